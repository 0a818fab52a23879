"""``lusynth export-png``: a frame store's frames as PNG folders (to look at, or to feed another tool)."""

from __future__ import annotations

from pathlib import Path

import typer

from lusynth.cli import app


@app.command("export-png")
def export_png_cmd(
    store: Path = typer.Option(..., "--store", "-s", help="A frame store (synthetic or real)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write <label>/<frame_id>.png into."),
) -> None:
    """Write a frame store's frames as PNG folders, one per class."""
    from lusynth.gan.generate import export_png

    typer.echo(f"{export_png(store, out)} PNGs in {out}")
