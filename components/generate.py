"""KFP component: synthetic frames from one trained GAN, near-copies filtered out."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def generate(gans: Input[Model], frames: Input[Dataset], profile: str, overrides: dict, experiment: str, parent_run_id: str,
             synthetic: Output[Dataset]) -> None:
    """Synthetic frames of the GAN's class as a synthetic set (a frame store marked synthetic)."""
    from lusynth.stages import run_stage
    from lusynth.tracking.pipeline_run import join_kfp_run

    join_kfp_run(experiment, parent_run_id)
    outcome = run_stage("generate", synthetic.path, inputs={"gans": [gans.path], "frames": frames.path}, profile=profile, overrides=overrides)
    synthetic.metadata.update({**outcome.artefact.kfp_metadata(), "cached": outcome.cached})
