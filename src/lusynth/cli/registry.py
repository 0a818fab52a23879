"""``lusynth registry show|approve|reject`` and ``lusynth serve``: the registry and the HTTP service (``lusynth export`` is a stage command)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from lusynth.cli import app

if TYPE_CHECKING:
    from lusynth.registry import VersionSummary

registry_app = typer.Typer(help="The MLflow model registry: versions, aliases, gate decisions, reviews.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


_TRACKING_DIR_HELP = "Directory of the local mlruns.db when MLFLOW_TRACKING_URI is unset."


@registry_app.command("show")
def registry_show_cmd(
    name: Optional[str] = typer.Argument(None, help="Registered model name (default: every lusynth model)."),
    tracking_dir: Optional[Path] = typer.Option(None, "--tracking-dir", help=_TRACKING_DIR_HELP),
    card: bool = typer.Option(False, "--card", help="Also print the model card of each alias holder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: versions, aliases, metrics, audit and review trail."),
) -> None:
    """Versions with aliases, holdout AUC with CI, privacy result, gate decisions and reviews."""
    from rich.console import Console
    from rich.markdown import Markdown

    from lusynth.registry import NON_INFERIORITY_MARGIN, RULE, list_versions, registry_json
    from lusynth.tracking import mlflow_client, tracking_uri

    client = mlflow_client(tracking_dir)
    if as_json:
        import json

        typer.echo(json.dumps(registry_json(client, name), indent=2))
        return
    versions = list_versions(client, name)
    console = Console()
    if not versions:
        console.print(f"no lusynth models registered at {tracking_uri(tracking_dir)}; run `lusynth export`")
        return
    console.print(render_versions(versions))
    console.print(RULE.format(margin=NON_INFERIORITY_MARGIN))
    if card:
        for v in versions:
            if v.aliases:
                console.print(Markdown(client.get_model_version(v.name, v.version).description or ""))


def _review_command(action: str) -> None:
    from lusynth.registry import DEFAULT_CLASSIFIER_MODEL

    doc = {"approve": "Approve VERSION: it becomes @champion; who, when, why and the champion it replaces are kept as version tags.",
           "reject": "Reject VERSION: it loses its aliases (a rejected champion gives way to the one it replaced); kept as version tags."}

    def command(
        version: str = typer.Argument(..., help="Version number (see `lusynth registry show`)."),
        reason: str = typer.Option(..., "--reason", help="Why: kept with the version."),
        model: str = typer.Option(DEFAULT_CLASSIFIER_MODEL, "--model", "-m", help="Registered model name."),
        reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Who decides (default: $USER)."),
        tracking_dir: Optional[Path] = typer.Option(None, "--tracking-dir", help=_TRACKING_DIR_HELP),
    ) -> None:
        from lusynth import registry
        from lusynth.tracking import mlflow_client

        event = getattr(registry, action)(mlflow_client(tracking_dir), model, version, reason=reason, reviewer=reviewer)
        prev = f"; previous champion v{event.previous_champion}" if event.previous_champion else "; no previous champion"
        typer.echo(f"{model} v{event.version} {event.action} by {event.by} at {event.at}: {event.reason}{prev}")

    command.__doc__ = doc[action]
    registry_app.command(action)(command)


_review_command("approve")
_review_command("reject")


def render_versions(versions: Sequence[VersionSummary]) -> Any:
    """A rich table for ``lusynth registry show``."""
    from rich.table import Table

    from lusynth.registry import TAG

    table = Table(title="lusynth model registry", show_lines=True)
    for col in ("model", "version", "aliases", "arm / class", "fraction", "holdout AUC [CI]", "privacy", "gate decision: reason", "review"):
        table.add_column(col, overflow="fold")
    for v in versions:
        t = v.tags
        auc = "n/a"
        if TAG + "holdout_auc" in t:
            auc = f"{float(t[TAG + 'holdout_auc']):.3f} [{float(t[TAG + 'holdout_auc_lo']):.3f}, {float(t[TAG + 'holdout_auc_hi']):.3f}]"
        table.add_row(v.name, v.version, ", ".join(v.aliases) or "-", t.get(TAG + "arm") or t.get(TAG + "label", ""),
                      t.get(TAG + "fraction", ""), auc, t.get(TAG + "privacy_audit", ""), f"{v.decision}: {v.reason}", _review_cell(t))
    return table


def _review_cell(tags: dict[str, str]) -> str:
    from lusynth.registry.review import REVIEW_TAG

    status = tags.get(REVIEW_TAG + "status", "not-requested")
    if status in ("pending", "not-requested"):
        return status
    return f"{status} by {tags.get(REVIEW_TAG + 'by', '?')} at {tags.get(REVIEW_TAG + 'at', '?')}: {tags.get(REVIEW_TAG + 'reason', '')}"


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
