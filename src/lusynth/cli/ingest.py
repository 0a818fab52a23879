"""``lusynth ingest``: user data (or the phantom) -> frame store + report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lusynth.cli import app


def _floats(text: Optional[str]) -> Optional[list[float]]:
    return [float(x) for x in text.split(",")] if text else None


@app.command("ingest")
def ingest_cmd(
    source: Optional[str] = typer.Argument(None, help="Folder (class sub-folders or with --labels-csv), a labels CSV, or s3://bucket/prefix. Omit for the built-in phantom."),
    out: Path = typer.Option(..., "--out", "-o", help="Frame store directory to write (replaced atomically)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Report directory (default: OUT-report, beside the store)."),
    profile: str = typer.Option("demo", "--profile", help="Parameter profile: demo | paper."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Output frame size: 64, 128 or 256 (0 = the profile's)."),
    square: Optional[str] = typer.Option(None, "--square", help="crop | pad a non-square frame."),
    labels_csv: Optional[str] = typer.Option(None, "--labels-csv", help="Labels CSV, relative to SOURCE."),
    path_column: Optional[str] = typer.Option(None, "--path-column"),
    label_column: Optional[str] = typer.Option(None, "--label-column"),
    patient_column: Optional[str] = typer.Option(None, "--patient-column"),
    video_column: Optional[str] = typer.Option(None, "--video-column"),
    positive_class: Optional[str] = typer.Option(None, "--positive-class", help="The class a positive prediction means."),
    video_mode: Optional[str] = typer.Option(None, "--video-mode", help="even | every"),
    video_frames: Optional[int] = typer.Option(None, "--video-frames", help="Frames per clip (even mode)."),
    video_step: Optional[int] = typer.Option(None, "--video-step", help="Take every k-th frame (every mode)."),
    split_fractions: Optional[str] = typer.Option(None, "--split-fractions", help="train,val,holdout by patient, e.g. 0.6,0.2,0.2"),
    train_fractions: Optional[str] = typer.Option(None, "--train-fractions", help="Nested training fractions, e.g. 0.25,0.5,1.0"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decode threads (default: CPU quota)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Turn images, clips and DICOM into a frame store with patient-level splits."""
    import json

    from lusynth.data.ingest import REPORT_JSON, summarise
    from lusynth.stages import ingest_stage, zero_is_unset

    overrides = {
        **zero_is_unset(image_size=image_size),
        "square": square,
        "labels_csv": labels_csv,
        "path_column": path_column,
        "label_column": label_column,
        "patient_column": patient_column,
        "video_column": video_column,
        "positive_class": positive_class,
        "video_mode": video_mode,
        "video_frames": video_frames,
        "video_step": video_step,
        "split_fractions": _floats(split_fractions),
        "train_fractions": _floats(train_fractions),
        "seed": seed,
        "workers": workers,
    }
    report = report or out.with_name(out.name + "-report")
    ingest_stage(out, source=source or None, profile=profile, overrides=overrides, report_dir=report, progress=not quiet, cache=False)
    if not quiet:
        typer.echo(summarise(json.loads((report / REPORT_JSON).read_text())), nl=False)
        typer.echo(f"frame store: {out}\nreport:      {report}")
