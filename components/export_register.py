"""KFP component: export the best models to ONNX and register them (model cards, promotion gate)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_register(
    classifiers: Input[list[Model]],
    gans: Input[list[Model]],
    results: Input[Artifact],
    profile: str,
    register: bool,
    experiment: str,
    parent_run_id: str,
    models: Output[Model],
    registry: Output[Markdown],
) -> None:
    """ONNX models (parity-checked) and, with ``register``, versions + aliases in the MLflow registry."""
    from pathlib import Path

    from lusynth.export.stage import ExportedModels
    from lusynth.tracking import join_pipeline_run
    from lusynth.stages import export_register_stage

    join_pipeline_run(experiment, parent_run_id)
    outcome = export_register_stage(models.path, classifiers=[c.path for c in classifiers], gans=[g.path for g in gans],
                                    evaluation=results.path, register=register, profile=profile)
    exported = ExportedModels.load(models.path)
    lines = ["# Exported and registered models", ""]
    lines += [f"- {v.name} v{v.version}: {v.decision} — {v.reason}" for v in exported.registered]
    lines += [f"- {arm}: {c.file} (parity max |diff| {c.max_abs_diff:.2e})" for arm, c in exported.classifiers.items()]
    Path(registry.path).write_text("\n".join(lines) + "\n")
    models.metadata.update({"cached": outcome.cached, "nominee_arm": exported.nominee_arm})
