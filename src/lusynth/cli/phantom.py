"""``lusynth phantom``: write the built-in LUS phantom dataset (clips + labels.csv)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import typer

from lusynth.cli import app


@app.command("phantom")
def phantom(
    out: Path = typer.Option(..., "--out", help="Dataset directory to write (replaced atomically)."),
    patients: int | None = typer.Option(None, "--patients", help="Number of patients (classes alternate)."),
    clips_per_patient: int | None = typer.Option(None, "--clips-per-patient", help="Clips per patient."),
    frames_per_clip: int | None = typer.Option(None, "--frames-per-clip", help="Frames per clip."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed; same seed, same dataset."),
    formats: str | None = typer.Option(None, "--formats", help="Comma-separated containers cycled over clips: png,mp4,gif."),
    width: int | None = typer.Option(None, "--width", help="Frame width in pixels."),
    height: int | None = typer.Option(None, "--height", help="Frame height in pixels."),
    profile: str = typer.Option("demo", "--profile", help="Parameter profile: demo or paper."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write a phantom LUS dataset (consolidation vs no_consolidation) as a user would hand it to ingest."""
    from lusynth.data.phantom_files import write_phantom_dataset
    from lusynth.params import stage_params

    overrides = {
        "patients": patients,
        "clips_per_patient": clips_per_patient,
        "frames_per_clip": frames_per_clip,
        "seed": seed,
        "formats": [f.strip() for f in formats.split(",") if f.strip()] if formats else None,
        "width": width,
        "height": height,
    }
    params = stage_params("phantom", profile, overrides)
    start = time.perf_counter()
    labels = write_phantom_dataset(out, params, progress=progress)
    seconds = time.perf_counter() - start
    lines = labels.read_text().splitlines()[1:]
    kinds = Counter(Path(line.split(",", 1)[0]).suffix.lstrip(".") for line in lines)
    typer.echo(
        f"wrote {labels} ({len(lines)} rows: {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}; "
        f"{params.patients} patients x {params.clips_per_patient} clips x {params.frames_per_clip} frames, "
        f"{params.width}x{params.height}) in {seconds:.1f} s"
    )
