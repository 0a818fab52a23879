"""KFP component: train one class's GAN at one training fraction."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_gan(
    frames: Input[Dataset],
    job: dict,
    profile: str,
    overrides: dict,
    experiment: str,
    parent_run_id: str,
    checkpoint_root: str,
    gan: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """A GAN (``job['generator']``: the paper's DCGAN or FastGAN-lite) on ``job['label']``'s training frames at
    ``job['fraction']``; ``overrides``: its family's settings (a plan_gans item's ``train_gan``).

    ``checkpoint_root`` (s3://... or a mounted directory; '' = off): the run's resumable state is
    mirrored there each time it is written (gan.checkpoint_seconds), so a retry of this task on a fresh pod
    resumes instead of restarting."""
    from lusynth.stages import run_stage
    from lusynth.tracking.pipeline_run import join_kfp_run

    join_kfp_run(experiment, parent_run_id)
    outcome = run_stage("train_gan", gan.path, inputs={"frames": frames.path}, key=job, profile=profile,
                        overrides=overrides, options={"checkpoint_mirror": checkpoint_root or None})
    gan.metadata.update({**job, "cached": outcome.cached})
    outcome.log_kfp_metrics(metrics)  # the chosen checkpoint's fidelity
