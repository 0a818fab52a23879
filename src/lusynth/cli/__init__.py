"""The ``lusynth`` command line: thin typer commands over library functions.

Each command group lives in its own module and registers itself on :data:`app`. The stage
commands (ingest, train-gan, generate, train-classifier, evaluate, export) are generated from the
stage table (:mod:`lusynth.cli.stages`); the others (phantom, run, pipeline, registry, serve,
stack, tracking) are written out, each calling one library function.
"""

from __future__ import annotations

import importlib
import sys

import typer

from lusynth import __version__
from lusynth.errors import LusynthError

app = typer.Typer(
    name="lusynth",
    help="Synthetic lung-ultrasound data: ingest, GAN, classifier experiment, registry, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# command modules, imported for their @app.command side effect
COMMAND_MODULES = ("phantom", "stages", "frames", "pipeline", "stack", "registry", "tracking")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lusynth {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """lusynth: does synthetic GAN data help, or safely replace, real LUS data?"""


for _name in COMMAND_MODULES:
    importlib.import_module(f"lusynth.cli.{_name}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors print one clear line and exit 2, no traceback."""
    try:
        # with standalone_mode=False click returns (not raises) the code of a typer.Exit(n)
        rc = app(args=argv, standalone_mode=False)
    except LusynthError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as exc:
        # usage errors (unknown command, bad option) from click or typer's vendored copy of it
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return int(exit_code)
        raise
    return int(rc) if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
