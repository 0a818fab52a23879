"""KFP component: holdout evaluation, fidelity and privacy audit, and the report."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    frames: Input[Dataset],
    classifiers: Input[list[Model]],
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
    roc: Output[ClassificationMetrics],
) -> None:
    """Every classifier on the real holdout; every GAN audited; the report as HTML/Markdown/JSON."""
    import shutil

    from lusynth.stages import run_stage
    from lusynth.tracking import join_pipeline_run

    join_pipeline_run(experiment, parent_run_id)
    outcome = run_stage("evaluate", results.path, inputs={"frames": frames.path, "classifiers": [c.path for c in classifiers],
                                                          "gans": [g.path for g in gans], "synthetic": [s.path for s in synthetic],
                                                          "audits": [a.path for a in audits]},
                        profile=profile, overrides=overrides)
    ev = outcome.artefact
    shutil.copyfile(ev.html, report_html.path)
    shutil.copyfile(ev.markdown, report_md.path)
    for k, v in ev.headline_metrics.items():
        metrics.log_metric(k, float(v))
    curve = ev.reference_roc()  # ClassificationMetrics holds one curve: the reference (real) classifier's
    if curve:
        roc.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])
    results.metadata.update({"cached": outcome.cached, "privacy_passed": ev.privacy_passed})
