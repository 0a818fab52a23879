"""KFP component: export the best models to ONNX and register them (model cards, promotion gate)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_register(
    classifiers: Input[list[Model]],
    gans: Input[list[Model]],
    evaluation: Input[Artifact],
    profile: str,
    overrides: dict,
    register: bool,
    experiment: str,
    parent_run_id: str,
    models: Output[Model],
    registry: Output[Markdown],
) -> None:
    """ONNX models (parity-checked) and, with ``register``, versions + aliases in the MLflow registry."""
    from pathlib import Path

    from lusynth.stages import run_stage
    from lusynth.tracking.pipeline_run import join_kfp_run

    join_kfp_run(experiment, parent_run_id)
    outcome = run_stage("export_register", models.path, inputs={"classifiers": [c.path for c in classifiers], "gans": [g.path for g in gans],
                                                       "evaluation": evaluation.path},
                        profile=profile, overrides=overrides, options={"register": register})
    Path(registry.path).write_text(outcome.artefact.markdown())
    models.metadata.update({**outcome.artefact.kfp_metadata(), "cached": outcome.cached})
