"""``lusynth run`` (the main job: the whole pipeline locally) and ``lusynth pipeline compile|submit``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lusynth.cli import app

pipeline_app = typer.Typer(help="Compile the KFP pipeline, or submit it to a Kubeflow Pipelines host.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _arms(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


FRACTIONS = typer.Option("0.5,1.0", "--fractions", help="Nested training fractions (by patient).")
SEEDS = typer.Option("0", "--seeds", help="Classifier seeds.")
ARMS = typer.Option("real,real+synthetic,synthetic", "--arms", help="Arms: real, real+synthetic, synthetic.")


@app.command("run")
def run_cmd(
    source: Optional[str] = typer.Argument(None, help="Data: folder, labels CSV or s3:// prefix. Omit for the built-in phantom."),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory (KFP outputs, MLflow store, report)."),
    profile: str = typer.Option("demo", "--profile", help="demo (minutes on 2 CPUs) | paper (GPU)."),
    fractions: str = FRACTIONS,
    seeds: str = SEEDS,
    arms: str = ARMS,
    image_size: int = typer.Option(0, "--image-size", help="64/128/256; 0 = the profile's."),
    synthetic_count: int = typer.Option(0, "--synthetic-count", help="Synthetic frames per class; 0 = the profile's."),
    gan_epochs: int = typer.Option(0, "--gan-epochs", help="GAN epochs; 0 = the profile's."),
    experiment: str = typer.Option("lusynth", "--experiment", help="MLflow experiment name."),
) -> None:
    """Run the whole pipeline on this machine with kfp.local, then print the results table."""
    from lusynth.errors import InputError
    from lusynth.export.stage import ExportedModels
    from lusynth_pipelines.local import run_local

    result = run_local(
        out, source=source or "", profile=profile, fractions=_floats(fractions), seeds=_ints(seeds), arms=_arms(arms),
        image_size=image_size, synthetic_count=synthetic_count, gan_epochs=gan_epochs, experiment=experiment,
    )
    typer.echo("")
    table = _results_table(result.results)
    if table:
        typer.echo(table)
    typer.echo(f"finished in {result.seconds:.0f} s")
    typer.echo(f"report:  {result.report_html}")
    typer.echo(f"         {result.report_md}")
    try:
        exported = ExportedModels.load(result.models)
    except InputError:  # the run exported nothing: no models to list
        pass
    else:
        typer.echo(f"models:  {result.models} (ONNX)")
        for v in exported.registered:
            typer.echo(f"         {v.name} v{v.version}: {v.decision}")
    if result.tracking_uri.startswith("sqlite:///"):
        typer.echo(f"MLflow:  mlflow ui --backend-store-uri {result.tracking_uri}   (then open http://127.0.0.1:5000)")
    else:
        typer.echo(f"MLflow:  {result.tracking_uri}")


def _results_table(results: Path) -> str:
    """The paper's table from the report's Markdown (the section that holds it)."""
    md = results / "report.md"
    if not md.is_file():
        return ""
    lines = md.read_text().splitlines()
    out: list[str] = []
    take = False
    for line in lines:
        if line.startswith("#"):
            if take and out:
                break
            take = "result" in line.lower() or "table" in line.lower()
        if take:
            out.append(line)
    return "\n".join(out).strip()


@pipeline_app.command("compile")
def compile_cmd(
    out: Path = typer.Option(Path("lusynth-experiment.yaml"), "--out", "-o", help="KFP IR YAML to write."),
    gpu: bool = typer.Option(False, "--gpu", help="Give GAN and classifier training one GPU each (paper profile)."),
) -> None:
    """Write the pipeline as KFP IR YAML for a cluster."""
    from lusynth_pipelines.submit import compile_to

    typer.echo(str(compile_to(out, gpu=gpu)))


@pipeline_app.command("submit")
def submit_cmd(
    host: str = typer.Option(..., "--host", help="KFP API endpoint, e.g. http://127.0.0.1:8080"),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="Cron expression: create a recurring run instead of one run."),
    experiment: str = typer.Option("lusynth", "--experiment", help="KFP (and MLflow) experiment name."),
    source: str = typer.Option("", "--source", help="Data URI (s3://... on a cluster); '' = phantom."),
    profile: str = typer.Option("paper", "--profile"),
    fractions: str = FRACTIONS,
    seeds: str = SEEDS,
    arms: str = ARMS,
    gpu: bool = typer.Option(True, "--gpu/--no-gpu", help="One GPU per training task."),
    namespace: Optional[str] = typer.Option(None, "--namespace"),
    gan_checkpoints: str = typer.Option(
        "", "--gan-checkpoints", envvar="LUSYNTH_GAN_CHECKPOINTS",
        help="s3://bucket/prefix where GAN training mirrors its resumable state, so a retried task resumes; '' = off.",
    ),
) -> None:
    """Create a run (or a recurring run with --schedule) on a Kubeflow Pipelines host."""
    from lusynth_pipelines.submit import submit

    ids = submit(
        host, experiment=experiment, schedule=schedule, gpu=gpu, namespace=namespace,
        arguments={"source": source, "profile": profile, "fractions": _floats(fractions), "seeds": _ints(seeds),
                   "arms": _arms(arms), "experiment": experiment, "gan_checkpoints": gan_checkpoints},
    )
    typer.echo(json.dumps(ids))
