"""``lusynth train-classifier`` and ``lusynth evaluate``: the paper's experiment and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lusynth.cli import app


def _floats(text: Optional[str]) -> Optional[list[float]]:
    return [float(x) for x in text.split(",")] if text else None


def _ints(text: Optional[str]) -> Optional[list[int]]:
    return [int(x) for x in text.split(",")] if text else None


@app.command("train-classifier")
def train_classifier_cmd(
    frames: Path = typer.Option(..., "--frames", "-f", help="Real frame store (from `lusynth ingest`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Classifier directory to write (replaced atomically)."),
    arm: str = typer.Option("real", "--arm", help="real | real+synthetic | synthetic"),
    fraction: float = typer.Option(1.0, "--fraction", help="Nested training fraction of patients, e.g. 0.5."),
    seed: int = typer.Option(0, "--seed"),
    synthetic: Optional[list[Path]] = typer.Option(None, "--synthetic", "-s", help="Synthetic frame store, or a folder of them (repeat); this fraction's are used."),
    profile: str = typer.Option("demo", "--profile", help="Parameter profile: demo | paper."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Random-search trials (paper: 12)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate of trial 0."),
    width: Optional[int] = typer.Option(None, "--width", help="Channel multiplier m of trial 0 (3, 5, 8)."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout of trial 0."),
    search_lr: Optional[str] = typer.Option(None, "--search-lr", help="Comma-separated learning rates to search."),
    search_width: Optional[str] = typer.Option(None, "--search-width", help="Comma-separated multipliers to search."),
    search_dropout: Optional[str] = typer.Option(None, "--search-dropout", help="Comma-separated dropouts to search."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (paper: 8)."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs"),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early-stopping patience on validation loss."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment"),
    synthetic_ratio: Optional[float] = typer.Option(None, "--synthetic-ratio", help="real+synthetic: synthetic frames per real frame."),
    synthetic_max_per_class: Optional[int] = typer.Option(None, "--synthetic-max-per-class", help="synthetic arm: frames per class (0 = all)."),
    threshold_rule: Optional[str] = typer.Option(None, "--threshold-rule", help="youden | f1 (chosen on validation)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Train one classifier of the grid (arm x fraction x seed) with the paper's random search."""
    import json

    from lusynth.stages import train_classifier_stage

    overrides = {
        "trials": trials, "lr": lr, "width": width, "dropout": dropout,
        "search_lr": _floats(search_lr), "search_width": _ints(search_width), "search_dropout": _floats(search_dropout),
        "batch_size": batch_size, "max_epochs": max_epochs, "patience": patience, "augment": augment,
        "synthetic_ratio": synthetic_ratio, "synthetic_max_per_class": synthetic_max_per_class,
        "threshold_rule": threshold_rule, "device": device, "track": False if no_track else None,
    }
    train_classifier_stage(frames, out, arm=arm, fraction=fraction, seed=seed, synthetic=tuple(synthetic or ()), profile=profile,
                           overrides=overrides, progress=not quiet, cache=False)
    if not quiet:
        r = json.loads((out / "classifier.json").read_text())
        typer.echo(f"classifier {arm} fraction {fraction:g} seed {seed}: hyper-parameters {r.get('hyperparams')}, "
                   f"val AUC {r.get('val_auc', float('nan')):.3f}, threshold {r.get('threshold', float('nan')):.3f}\nwritten: {out}")


@app.command("evaluate")
def evaluate_cmd(
    frames: Path = typer.Option(..., "--frames", "-f", help="Real frame store (its holdout split is evaluated)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory to write (replaced atomically)."),
    classifier: list[Path] = typer.Option(..., "--classifier", "--classifiers", "-c", help="Classifier directory, or a folder of them (repeat)."),
    gan: Optional[list[Path]] = typer.Option(None, "--gan", "--gans", "-g", help="GAN directory from train-gan, or a folder of them (repeat)."),
    synthetic: Optional[list[Path]] = typer.Option(None, "--synthetic", "-s", help="Synthetic frame store from generate, or a folder of them (repeat)."),
    metrics_json: Optional[Path] = typer.Option(None, "--metrics-json", help="Also write the headline metrics here (for `dvc metrics`)."),
    plots_dir: Optional[Path] = typer.Option(None, "--plots-dir", help="Also write learning-curve and ROC CSVs here (for `dvc plots`)."),
    profile: str = typer.Option("demo", "--profile", help="Parameter profile: demo | paper."),
    n_bootstrap: Optional[int] = typer.Option(None, "--n-bootstrap", help="Patient-level bootstrap resamples."),
    ci: Optional[float] = typer.Option(None, "--ci", help="Confidence level, e.g. 0.95."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    table_level: Optional[str] = typer.Option(None, "--table-level", help="frame | clip | patient"),
    table_threshold: Optional[str] = typer.Option(None, "--table-threshold", help="0.5 | val"),
    audit_max_frames: Optional[int] = typer.Option(None, "--audit-max-frames", help="Frames per side in the audit."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary."),
) -> None:
    """Holdout metrics with CIs, the paper's table, the fidelity/privacy audit and the report."""
    import json

    from lusynth.stages import evaluate_stage

    overrides = {
        "n_bootstrap": n_bootstrap, "ci": ci, "seed": seed, "table_level": table_level,
        "table_threshold": table_threshold, "audit_max_frames": audit_max_frames, "track": False if no_track else None,
    }
    evaluate_stage(frames, out, classifiers=classifier, gans=tuple(gan or ()), synthetic=tuple(synthetic or ()), profile=profile,
                   overrides=overrides, progress=not quiet, cache=False)
    if metrics_json or plots_dir:
        from lusynth.report.dvc import export_for_dvc

        export_for_dvc(out, metrics_json or out / "metrics.json", plots_dir or out / "plots")
    if not quiet:
        report = json.loads((out / "report.json").read_text())
        for line in report.get("headline", {}).get("summary", []):
            typer.echo(line)
        passed = (report.get("privacy_gate") or {}).get("passed")
        if passed is not None:
            typer.echo(f"privacy gate: {'PASS' if passed else 'FAIL'}")
        typer.echo(f"report: {out / 'report.html'}")
