"""``lusynth registry show`` and ``lusynth serve``: the registry and the HTTP service (``lusynth export`` is a stage command)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from lusynth.cli import app

if TYPE_CHECKING:
    from lusynth.registry import VersionSummary

registry_app = typer.Typer(help="The MLflow model registry: versions, aliases, gate decisions.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("show")
def registry_show_cmd(
    name: Optional[str] = typer.Argument(None, help="Registered model name (default: every lusynth model)."),
    tracking_dir: Optional[Path] = typer.Option(None, "--tracking-dir", help="Directory of the local mlruns.db when MLFLOW_TRACKING_URI is unset."),
    card: bool = typer.Option(False, "--card", help="Also print the model card of each alias holder."),
) -> None:
    """Versions with aliases, holdout AUC with CI, privacy result and gate decisions."""
    from rich.console import Console
    from rich.markdown import Markdown

    from lusynth.registry import list_versions
    from lusynth.tracking import mlflow_client, tracking_uri

    client = mlflow_client(tracking_dir)
    versions = list_versions(client, name)
    console = Console()
    if not versions:
        console.print(f"no lusynth models registered at {tracking_uri(tracking_dir)}; run `lusynth export`")
        return
    console.print(render_versions(versions))
    if card:
        for v in versions:
            if v.aliases:
                console.print(Markdown(client.get_model_version(v.name, v.version).description or ""))


def render_versions(versions: Sequence[VersionSummary]) -> Any:
    """A rich table for ``lusynth registry show``."""
    from rich.table import Table

    from lusynth.registry import TAG

    table = Table(title="lusynth model registry", show_lines=True)
    for col in ("model", "version", "aliases", "arm / class", "fraction", "holdout AUC [CI]", "privacy", "gate decision: reason"):
        table.add_column(col, overflow="fold")
    for v in versions:
        t = v.tags
        auc = "n/a"
        if TAG + "holdout_auc" in t:
            auc = f"{float(t[TAG + 'holdout_auc']):.3f} [{float(t[TAG + 'holdout_auc_lo']):.3f}, {float(t[TAG + 'holdout_auc_hi']):.3f}]"
        table.add_row(v.name, v.version, ", ".join(v.aliases) or "-", t.get(TAG + "arm") or t.get(TAG + "label", ""),
                      t.get(TAG + "fraction", ""), auc, t.get(TAG + "privacy_audit", ""), f"{v.decision}: {v.reason}")
    return table


def _serve_command() -> Any:
    """``lusynth serve``: model, address and one option per :class:`ServeLimits` field (its comment is the help)."""
    import dataclasses
    import inspect
    import typing

    from lusynth.cli.stages import set_signature
    from lusynth.params import field_help
    from lusynth.serve.limits import ServeLimits

    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("model", kw, annotation=str, default=typer.Option(
            "models:/lusynth-lus-classifier@champion", "--model", "-m", help="An .onnx file or models:/NAME@ALIAS.")),
        inspect.Parameter("host", kw, annotation=str, default=typer.Option("127.0.0.1", "--host", help="Address to listen on.")),
        inspect.Parameter("port", kw, annotation=int, default=typer.Option(8080, "--port", help="Port to listen on.")),
        inspect.Parameter("tracking_dir", kw, annotation=Optional[Path], default=typer.Option(
            None, "--tracking-dir", help="Directory of the local mlruns.db when MLFLOW_TRACKING_URI is unset.")),
    ]
    hints, helps = typing.get_type_hints(ServeLimits), field_help(ServeLimits)
    names = [f.name for f in dataclasses.fields(ServeLimits)]
    for f in dataclasses.fields(ServeLimits):
        params.append(inspect.Parameter(f.name, kw, annotation=hints[f.name], default=typer.Option(
            f.default, "--" + f.name.replace("_", "-"), help=helps.get(f.name, ""), rich_help_panel="Limits")))

    def command(**values: Any) -> None:
        from lusynth.serve import serve

        limits = ServeLimits(**{n: values[n] for n in names})
        serve(values["model"], host=values["host"], port=values["port"], limits=limits, tracking_dir=values["tracking_dir"])

    return set_signature(command, params, name="serve",
                         doc="Serve the classifier over HTTP: POST /predict, GET /healthz, GET /metadata (limits: see README, Serving).")


app.command("serve")(_serve_command())
