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
    profile: str,
    experiment: str,
    parent_run_id: str,
    results: Output[Artifact],
    report_html: Output[HTML],
    report_md: Output[Markdown],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
) -> None:
    """Every classifier on the real holdout; every GAN audited; the report as HTML/Markdown/JSON."""
    import json
    import shutil
    from pathlib import Path

    from lusynth.report.render import headline_metrics
    from lusynth.stages import evaluate_stage
    from lusynth.tracking import join_pipeline_run

    join_pipeline_run(experiment, parent_run_id)
    outcome = evaluate_stage(frames.path, results.path, classifiers=[c.path for c in classifiers], gans=[g.path for g in gans],
                             synthetic=[s.path for s in synthetic], profile=profile)
    out = Path(results.path)
    shutil.copyfile(out / "report.html", report_html.path)
    shutil.copyfile(out / "report.md", report_md.path)
    report = json.loads((out / "report.json").read_text())
    for k, v in headline_metrics(report).items():
        if isinstance(v, (int, float)):
            metrics.log_metric(k, float(v))
    # ClassificationMetrics holds one curve: the real arm's at the largest fraction (seed 0)
    real = [c for c in report.get("classifiers", []) if c["arm"] == "real"]
    if real:
        best = max(real, key=lambda c: (c["fraction"], -c["seed"]))["roc"]["frame"]
        roc.log_roc_curve(best["fpr"], best["tpr"], best["thresholds"])
    results.metadata.update({"cached": outcome.cached, "privacy_passed": (report.get("privacy_gate") or {}).get("passed")})
