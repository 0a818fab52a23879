"""KFP component: holdout evaluation, fidelity and privacy audit, and the report."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    frames: Input[Dataset],
    classifiers: Input[list[Model]],
    real_classifiers: Input[list[Model]],
    gans: Input[list[Model]],
    synthetic: Input[list[Dataset]],
    audits: Input[list[Dataset]],
    profile: str,
    overrides: dict,
    experiment: str,
    parent_run_id: str,
    results: Output[Artifact],
    report_html: Output[HTML],
    report_md: Output[Markdown],
    metrics: Output[Metrics],
    roc_real: Output[ClassificationMetrics],
    roc_real_aug: Output[ClassificationMetrics],
    roc_real_synthetic: Output[ClassificationMetrics],
    roc_synthetic: Output[ClassificationMetrics],
) -> None:
    """Every classifier on the real holdout; every GAN audited; the report as HTML/Markdown/JSON.
    ``classifiers`` and ``real_classifiers``: the two classifier loops' (the arms that read synthetic
    frames, and the others; a loop's placeholder output is dropped).
    ``roc_<arm>``: the arm's holdout ROC and confusion matrix for the KFP UI (one output per arm of
    lusynth.classifier.params.ARMS; an arm left out of the grid leaves its output empty)."""
    import shutil

    from lusynth.data.framestore import FrameStore
    from lusynth.stages import run_stage, without_placeholders
    from lusynth.tracking.pipeline_run import join_kfp_run

    join_kfp_run(experiment, parent_run_id)
    outcome = run_stage("evaluate", results.path, inputs={"frames": frames.path, "classifiers": without_placeholders([c.path for c in [*real_classifiers, *classifiers]]),
                                                          "gans": [g.path for g in gans], "synthetic": [s.path for s in synthetic],
                                                          "audits": [a.path for a in audits]},
                        profile=profile, overrides=overrides)
    ev = outcome.artefact
    shutil.copyfile(ev.html, report_html.path)
    shutil.copyfile(ev.markdown, report_md.path)
    for k, v in ev.headline_metrics.items():
        metrics.log_metric(k, float(v))
    store = FrameStore.load(frames.path)
    positive = store.header.get("positive_class") or store.classes[-1]
    categories = [*(c for c in store.classes if c != positive), positive]
    for arm, out in (("real", roc_real), ("real+aug", roc_real_aug), ("real+synthetic", roc_real_synthetic), ("synthetic", roc_synthetic)):
        cm = ev.kfp_classification(arm, categories)
        if cm is None:
            continue
        out.log_roc_curve(cm["roc"]["fpr"], cm["roc"]["tpr"], cm["roc"]["thresholds"])
        if cm["matrix"]:
            out.log_confusion_matrix(cm["categories"], cm["matrix"])
    results.metadata.update({"cached": outcome.cached, "privacy_passed": ev.privacy_passed})
