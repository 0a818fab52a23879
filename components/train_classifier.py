"""KFP component: train the classifier of one arm x fraction x seed."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_classifier(
    frames: Input[Dataset],
    job: dict,
    profile: str,
    overrides: dict,
    experiment: str,
    parent_run_id: str,
    classifier: Output[Model],
    metrics: Output[Metrics],
    synthetic: Optional[Input[Dataset]] = None,
) -> None:
    """The paper's separable-conv classifier for ``job`` = {arm, fraction, seed, ...}. ``synthetic``: the
    bundle of every synthetic set (the stage picks this cell's), given only to the loop of the arms that
    read synthetic frames, so a real arm's task is never keyed on it. ``job`` {}: the plan's placeholder
    for a grid without cells of this loop's kind; it writes a placeholder output and trains nothing."""
    from lusynth.stages import run_stage, write_placeholder
    from lusynth.tracking.pipeline_run import join_kfp_run

    if not job:
        write_placeholder(classifier.path, "the grid has no cell for this classifier loop", metrics)
        return
    join_kfp_run(experiment, parent_run_id)
    outcome = run_stage("train_classifier", classifier.path,
                        inputs={"frames": frames.path, "synthetic": [synthetic.path] if synthetic is not None else []}, key=job,
                        profile=profile, overrides=overrides)
    classifier.metadata.update({**job, "cached": outcome.cached})
    outcome.log_kfp_metrics(metrics)
