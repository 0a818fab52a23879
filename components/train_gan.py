"""KFP component: train one class's DCGAN at one training fraction."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_gan(
    frames: Input[Dataset],
    job: dict,
    profile: str,
    epochs: int,
    experiment: str,
    parent_run_id: str,
    checkpoint_root: str,
    gan: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """The paper's DCGAN on ``job['label']``'s training frames at ``job['fraction']`` (epochs 0 = profile default).

    ``checkpoint_root`` (s3://... or a mounted directory; '' = off): the run's resumable state is
    mirrored there every epoch, so a retry of this task on a fresh pod resumes instead of restarting."""
    from lusynth.gan.run import GanRun
    from lusynth.tracking import join_pipeline_run
    from lusynth.stages import train_gan_stage, zero_is_unset

    label, fraction = str(job["label"]), float(job["fraction"])
    join_pipeline_run(experiment, parent_run_id)
    outcome = train_gan_stage(frames.path, gan.path, label=label, fraction=fraction, profile=profile, overrides=zero_is_unset(epochs=epochs),
                              mirror_root=checkpoint_root or None)
    run = GanRun.load(gan.path)
    gan.metadata.update({"label": label, "fraction": fraction, "cached": outcome.cached})
    for k, v in ((run.chosen or {}).get("metrics") or {}).items():  # the chosen checkpoint's fidelity
        if isinstance(v, (int, float)):
            metrics.log_metric(k, float(v))
    metrics.log_metric("cached", float(outcome.cached))
