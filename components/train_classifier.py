"""KFP component: train the classifier of one arm x fraction x seed."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_classifier(
    frames: Input[Dataset],
    synthetic: Input[Dataset],
    job: dict,
    profile: str,
    overrides: dict,
    experiment: str,
    parent_run_id: str,
    classifier: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """The paper's separable-conv classifier for ``job`` = {arm, fraction, seed}; ``synthetic`` is the
    bundle of every fraction's synthetic sets (the stage picks this fraction's)."""
    from lusynth.stages import run_stage
    from lusynth.tracking.pipeline_run import join_kfp_run

    join_kfp_run(experiment, parent_run_id)
    outcome = run_stage("train_classifier", classifier.path, inputs={"frames": frames.path, "synthetic": [synthetic.path]}, key=job,
                        profile=profile, overrides=overrides)
    classifier.metadata.update({**job, "cached": outcome.cached})
    outcome.log_kfp_metrics(metrics)
