"""``lusynth tracking sync``: upload what stage runs could not log while MLflow was unreachable."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lusynth.cli import app

tracking_app = typer.Typer(help="MLflow tracking: upload what runs kept while the server was unreachable.", no_args_is_help=True)
app.add_typer(tracking_app, name="tracking")


@tracking_app.command("sync")
def tracking_sync_cmd(
    dirs: Optional[list[Path]] = typer.Argument(None, help="Stage output directories (searched recursively) or spool files; default: the current directory."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="Upload here instead of MLFLOW_TRACKING_URI or the server the run was meant for."),
) -> None:
    """Upload the spooled params, metrics, tags and artifacts; create or continue each run and end it as the stage meant."""
    from lusynth.tracking import sync

    results = sync([str(d) for d in dirs] if dirs else ["."], uri=tracking_uri)
    if not results:
        typer.echo(f"no tracking spool in {', '.join(map(str, dirs or [Path('.')]))}: nothing to upload")
    for r in results:
        typer.echo(r.line())
