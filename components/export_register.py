"""KFP component: export the best models to ONNX and register them (model cards, promotion gate)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_register(
    classifiers: Input[list[Model]],
    real_classifiers: Input[list[Model]],
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
    """ONNX models (parity-checked) and, with ``register``, versions + aliases in the MLflow registry.
    ``classifiers`` and ``real_classifiers``: the two classifier loops' (as evaluate's)."""
    from pathlib import Path

    from lusynth.stages import run_stage, without_placeholders
    from lusynth.tracking.pipeline_run import join_kfp_run

    join_kfp_run(experiment, parent_run_id)
    outcome = run_stage("export_register", models.path, inputs={"classifiers": without_placeholders([c.path for c in [*real_classifiers, *classifiers]]), "gans": [g.path for g in gans],
                                                       "evaluation": evaluation.path},
                        profile=profile, overrides=overrides, options={"register": register})
    Path(registry.path).write_text(outcome.artefact.markdown())
    models.metadata.update({**outcome.artefact.kfp_metadata(), "cached": outcome.cached})
