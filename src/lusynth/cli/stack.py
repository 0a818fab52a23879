"""``lusynth stack up|down|status|env``: the local SeaweedFS + MLflow stack on 127.0.0.1.

The stack itself is a dev tool (:mod:`lusynth_dev.stack`), imported only when a command runs: the
rest of the CLI works without the dev extra, and lusynth_dev stays outside the library's code digest.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import typer

from lusynth.cli import app
from lusynth.errors import LusynthError

stack_app = typer.Typer(
    name="stack",
    help="A local S3 server (SeaweedFS) and MLflow server on 127.0.0.1 for the pipeline, DVC and the tests.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")

_DIR = typer.Option(Path("runs/stack"), "--dir", help="Stack directory: data, logs, pid files, credentials.")


def _stack() -> ModuleType:
    """:mod:`lusynth_dev.stack`, or one line saying how to install it."""
    try:
        from lusynth_dev import stack
    except ModuleNotFoundError as exc:
        if exc.name not in ("lusynth_dev", "lusynth_dev.stack"):
            raise
        raise LusynthError("`lusynth stack` needs the dev tools (lusynth_dev); install the dev extra: pip install -e '.[dev]'") from None
    return stack


@stack_app.command("up")
def up(
    stack_dir: Path = _DIR,
    s3_port: int | None = typer.Option(None, "--s3-port", help="S3 port on 127.0.0.1 (default: a free one)."),
    mlflow_port: int | None = typer.Option(None, "--mlflow-port", help="MLflow port on 127.0.0.1 (default: a free one)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the servers to answer."),
) -> None:
    """Start SeaweedFS and the MLflow server (or report the running ones)."""
    stack = _stack()
    typer.echo(f"starting the stack in {stack_dir.resolve()} ...", err=True)
    info = stack.up(stack_dir, s3_port=s3_port, mlflow_port=mlflow_port, timeout=timeout)
    state = "already running" if info.get("already_running") else "up"
    typer.echo(f"stack {state}: {info['dir']}")
    typer.echo(f"  S3 (SeaweedFS)  {info['s3']['endpoint']}  buckets: {', '.join(info['buckets'])}")
    typer.echo(f"  MLflow          {info['mlflow']['uri']}  artifacts: {info['mlflow']['artifacts']}")
    typer.echo(f"  credentials     {info['credentials_file']} (mode 0600)")
    typer.echo(f'point your shell at it:  eval "$(lusynth stack env --dir {stack_dir})"')


@stack_app.command("down")
def down(stack_dir: Path = _DIR, timeout: float = typer.Option(15.0, "--timeout", help="Seconds before SIGKILL.")) -> None:
    """Stop both servers; data and credentials stay for the next `up`."""
    stack = _stack()
    was = stack.down(stack_dir, timeout=timeout)
    for service, running in was.items():
        typer.echo(f"{service}: {'stopped' if running else 'was not running'}")


@stack_app.command("status")
def status(stack_dir: Path = _DIR, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Say which server of the stack is up; exit code 1 unless both are."""
    stack = _stack()
    st = stack.status(stack_dir)
    if as_json:
        typer.echo(json.dumps(st, indent=2, sort_keys=True))
    else:
        for service, s in st["services"].items():
            typer.echo(f"{service}: {'up' if s['up'] else 'down'}" + (f"  {s['url']}  pid {s['pid']}" if s["up"] else ""))
    if not st["up"]:
        raise typer.Exit(1)


@stack_app.command("env")
def env(
    stack_dir: Path = _DIR,
    dvc: bool = typer.Option(False, "--dvc", help="Also point the DVC repository's remote at this stack: write its endpointurl "
                                                   "into .dvc/config.local (credentials stay in the exported environment)."),
    repo: Path = typer.Option(Path("."), "--repo", help="The DVC repository for --dvc."),
) -> None:
    """Print `export ...` lines (with the secret key) and the DVC remote commands."""
    stack = _stack()
    for line in stack.env_lines(stack_dir):
        typer.echo(line)
    if dvc:
        written = stack.write_dvc_local(repo, stack_dir)
        typer.echo(f"# DVC remote {stack.DVC_REMOTE_NAME!r} -> this stack: {written}")
