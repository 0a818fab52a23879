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
    experiment: str,
    parent_run_id: str,
    classifier: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """The paper's separable-conv classifier for ``job`` = {arm, fraction, seed}; ``synthetic`` is the
    bundle of every fraction's synthetic stores (the stage picks this fraction's)."""
    import json
    from pathlib import Path

    from lusynth.tracking import join_pipeline_run
    from lusynth.stages import train_classifier_stage

    arm, fraction, seed = str(job["arm"]), float(job["fraction"]), int(job["seed"])
    join_pipeline_run(experiment, parent_run_id)
    outcome = train_classifier_stage(frames.path, classifier.path, arm=arm, fraction=fraction, seed=seed,
                                     synthetic=[synthetic.path], profile=profile)
    info = json.loads((Path(classifier.path) / "classifier.json").read_text())
    classifier.metadata.update({"arm": arm, "fraction": fraction, "seed": seed, "cached": outcome.cached})
    for k in ("val_auc", "val_loss", "threshold"):
        if isinstance(info.get(k), (int, float)):
            metrics.log_metric(k, float(info[k]))
    metrics.log_metric("cached", float(outcome.cached))
