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
    for k, v in outcome.artefact.kfp_metrics().items():
        metrics.log_metric(k, v)
    metrics.log_metric("cached", float(outcome.cached))
    # the numbers as a file as well: kfp.local's cache takes an output without a file for a deleted one (a miss)
    import json
    from pathlib import Path

    Path(metrics.path).parent.mkdir(parents=True, exist_ok=True)
    Path(metrics.path).write_text(json.dumps(metrics.metadata, sort_keys=True) + "\n")
