"""``lusynth run`` (the main job: the whole pipeline locally) and ``lusynth pipeline compile|upload|submit``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Optional

import typer

from lusynth.cli import app
from lusynth.cli.stages import overrides_from, section_flags, set_signature

pipeline_app = typer.Typer(help="Compile the KFP pipeline, or submit it to a Kubeflow Pipelines host.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


#: sections with their own flags on `run` and `pipeline submit` (the rest: --set SECTION.KEY=VALUE)
RUN_SECTIONS = ("experiment", "ingest")


def _run_flags() -> list[Any]:
    used = {"--out", "--profile", "--verbose", "-v", "--set", "--params-file", "--experiment", "-o", "--host", "--schedule", "--gpu", "--no-gpu",
            "--namespace", "--gan-checkpoints", "--job-name", "--source", "--image", "--gpu-image", "--gpu-node-selector",
            "--gpu-toleration", "--version-name"}
    return section_flags(RUN_SECTIONS, used)


def _overrides(flags: list[Any], values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return overrides_from(flags, values, values.get("assignments"), values.get("params_file"))


def _param(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=info)


_SET = _param("assignments", Optional[list[str]], typer.Option(None, "--set", help="Override any parameter: SECTION.KEY=VALUE (repeat), "
                                                                                    "e.g. --set gan.epochs=20 --set generate.n_per_class=100."))
_PARAMS_FILE = _param("params_file", Optional[Path], typer.Option(None, "--params-file", help="YAML with per-section overrides."))


def _run(**values: Any) -> None:
    from lusynth.experiment import run_overrides
    from lusynth_pipelines.local import run_local

    # every parameter, and the rules across sections, checked before OUT or its logs are made
    overrides = run_overrides(values["profile"], _overrides(_RUN_FLAGS, values))
    kwargs = dict(source=values["source"] or "", profile=values["profile"], overrides=overrides, experiment=values["experiment"])
    if values["verbose"]:
        result = run_local(values["out"], **kwargs)
    else:
        result = _run_quietly(values["out"], kwargs)
    typer.echo("")
    table = _results_table(result.results)
    if table:
        typer.echo(table)
    typer.echo(f"finished in {result.seconds:.0f} s")
    typer.echo(f"report:  {result.report_html}")
    typer.echo(f"         {result.report_md}")
    from lusynth.export.stage import ExportedModels

    typer.echo(f"models:  {result.models} (ONNX)")
    for line in ExportedModels.load(result.models).registered_lines(short=not values["verbose"]):
        typer.echo(f"         {line}")
    if not values["verbose"]:
        typer.echo(f"         (each decision in full: MLFLOW_TRACKING_URI={result.tracking_uri} lusynth registry show)")
    if result.tracking_uri.startswith("sqlite:///"):
        typer.echo(f"MLflow:  mlflow ui --backend-store-uri {result.tracking_uri}   (then open http://127.0.0.1:5000)")
    else:
        typer.echo(f"MLflow:  {result.tracking_uri}")


def _run_quietly(out: Path, kwargs: dict[str, Any]) -> Any:
    """run_local with one line per task here and every other line in OUT/logs/."""
    from lusynth.errors import LusynthError
    from lusynth_pipelines.local import run_local
    from lusynth_pipelines.runlog import routed_output

    logs = Path(out).resolve() / "logs"
    typer.echo(f"running the pipeline with kfp.local; task logs in {logs}/ (--verbose prints them here)")
    tasks: list[Any] = []
    try:
        with routed_output(logs) as router:
            tasks = router.tasks
            return run_local(out, **kwargs)
    except RuntimeError as exc:  # kfp.local's "Pipeline ... finished with status FAILURE": the task lines above say why
        failed = [f"{t.name} (log: {t.log})" for t in tasks if t.status == "FAILED"]
        if failed:
            raise LusynthError(f"the pipeline stopped: task {', '.join(failed)} failed") from None
        raise LusynthError(f"the pipeline stopped: {exc} (log: {logs / 'pipeline.log'})") from None


_RUN_FLAGS = _run_flags()
app.command("run", help="Run the whole pipeline on this machine with kfp.local, then print the results table.")(set_signature(
    _run,
    [_param("source", Optional[str], typer.Argument(None, metavar="SOURCE", help="Data: folder, labels CSV or s3:// prefix. "
                                                                                  "Omit for the built-in phantom.")),
     _param("out", Path, typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory (KFP outputs, MLflow store, report).")),
     _param("profile", str, typer.Option("demo", "--profile", help="demo (minutes on 2 CPUs) | paper (GPU) | tiny (tests).")),
     *[f.parameter for f in _RUN_FLAGS], _SET, _PARAMS_FILE,
     _param("experiment", str, typer.Option("lusynth", "--experiment", help="MLflow experiment name.")),
     _param("verbose", bool, typer.Option(False, "--verbose", "-v", help="Print every task's output (KFP, MLflow, ONNX logs) here "
                                                                          "instead of one line per task (the logs go to OUT/logs/)."))],
    name="run", doc="Run the whole pipeline on this machine with kfp.local, then print the results table."))


def _results_table(results: Path) -> str:
    """The paper's table from the report's Markdown (the section that holds it), with the withheld
    generators and skipped classifiers when there are any (they change what the verdicts mean)."""
    md = results / "report.md"
    if not md.is_file():
        return ""
    lines = md.read_text().splitlines()
    out: list[str] = []
    take = False
    for line in lines:
        if line.startswith("#"):
            keep = any(w in line.lower() for w in ("result", "table", "withheld"))
            if take and out and not keep:
                break
            take = keep
        if take:
            out.append(line)
    return "\n".join(out).strip()


_IMAGE = _param("image", Optional[str], typer.Option(None, "--image", envvar="LUSYNTH_IMAGE",
                                                    help="CPU image of every task: a version tag or digest "
                                                         "(default ghcr.io/lusynth/lusynth:<version>)."))
_GPU_IMAGE = _param("gpu_image", Optional[str], typer.Option(None, "--gpu-image", envvar="LUSYNTH_GPU_IMAGE",
                                                            help="CUDA image of the GPU tasks with --gpu (default "
                                                                 "ghcr.io/lusynth/lusynth:<version>-cuda, infra/Dockerfile TARGET=cuda)."))
_GPU = _param("gpu", bool, typer.Option(False, "--gpu/--no-gpu", help="One GPU and the CUDA image for each training task "
                                                                       "(paper profile); default: CPU only."))
_NODE_SELECTOR = _param("gpu_node_selector", Optional[list[str]], typer.Option(
    None, "--gpu-node-selector", help="KEY=VALUE node label the GPU tasks must run on (repeat), "
                                      "e.g. cloud.google.com/gke-accelerator=nvidia-l4."))
_TOLERATION = _param("gpu_toleration", Optional[list[str]], typer.Option(
    None, "--gpu-toleration", help="KEY[=VALUE][:EFFECT] taint the GPU tasks tolerate (repeat; replaces the default "
                                   "nvidia.com/gpu:NoSchedule)."))
_CLUSTER_PARAMS = [_GPU, _IMAGE, _GPU_IMAGE, _NODE_SELECTOR, _TOLERATION]


def _cluster(values: dict[str, Any]) -> Any:
    """The ClusterSettings of the --gpu/--image/... flags; bad values fail here with one line."""
    from lusynth.errors import InputError
    from lusynth_pipelines.experiment import ClusterSettings, Toleration

    selector: dict[str, str] = {}
    for item in values.get("gpu_node_selector") or []:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise InputError(f"--gpu-node-selector {item!r}: write KEY=VALUE (a node label)")
        selector[key] = value
    tolerations = tuple(Toleration.parse(t) for t in values["gpu_toleration"]) if values.get("gpu_toleration") else None
    kwargs: dict[str, Any] = {"gpu": values["gpu"], "image": values.get("image") or "", "gpu_image": values.get("gpu_image") or "",
                              "gpu_node_selector": selector}
    if tolerations is not None:
        kwargs["gpu_tolerations"] = tolerations
    return ClusterSettings(**kwargs)


def _compile(**values: Any) -> None:
    from lusynth_pipelines.submit import compile_to

    typer.echo(str(compile_to(values["out"], cluster=_cluster(values))))


pipeline_app.command("compile", help="Write the pipeline as KFP IR YAML for a cluster.")(set_signature(
    _compile,
    [_param("out", Path, typer.Option(Path("lusynth-experiment.yaml"), "--out", "-o", help="KFP IR YAML to write.")), *_CLUSTER_PARAMS],
    name="compile", doc="Write the pipeline as KFP IR YAML for a cluster."))


def _upload(**values: Any) -> None:
    from lusynth_pipelines.submit import upload

    typer.echo(json.dumps(upload(values["host"], cluster=_cluster(values), namespace=values["namespace"],
                                 version_name=values["version_name"])))


_HOST = _param("host", str, typer.Option(..., "--host", help="KFP API endpoint, e.g. http://127.0.0.1:8080"))
_NAMESPACE = _param("namespace", Optional[str], typer.Option(None, "--namespace"))
_VERSION_NAME = _param("version_name", Optional[str], typer.Option(
    None, "--version-name", help="Pipeline version name (default: lusynth version + the compiled IR's sha256, so uploading "
                                 "the same pipeline again finds its version)."))
pipeline_app.command("upload", help="Upload the compiled pipeline to KFP: the pipeline (once) and a version of it.")(set_signature(
    _upload, [_HOST, _NAMESPACE, _VERSION_NAME, *_CLUSTER_PARAMS],
    name="upload", doc="Upload the compiled pipeline to KFP: the pipeline (once) and a version of it."))


def _submit(**values: Any) -> None:
    from lusynth.experiment import run_overrides
    from lusynth_pipelines.submit import submit

    overrides = run_overrides(values["profile"], _overrides(_RUN_FLAGS, values))  # fails here, before contacting the host
    ids = submit(
        values["host"], experiment=values["experiment"], schedule=values["schedule"], cluster=_cluster(values),
        namespace=values["namespace"], job_name=values["job_name"], version_name=values["version_name"],
        arguments={"source": values["source"], "profile": values["profile"], "overrides": overrides, "experiment": values["experiment"],
                   "gan_checkpoints": values["gan_checkpoints"]},
    )
    typer.echo(json.dumps(ids))


pipeline_app.command("submit", help="Upload the pipeline version and run it (or create a recurring run with --schedule) on a "
                                    "Kubeflow Pipelines host.")(set_signature(
    _submit,
    [_HOST,
     _param("schedule", Optional[str], typer.Option(None, "--schedule", help="Cron expression: create a recurring run in KFP instead "
                                                                           "of one run (beside infra/k8s's CronJob).")),
     _param("experiment", str, typer.Option("lusynth", "--experiment", help="KFP (and MLflow) experiment name.")),
     _param("job_name", Optional[str], typer.Option(None, "--job-name", help="Run (or recurring run) name.")),
     _param("source", str, typer.Option("", "--source", help="Data URI (s3://... on a cluster); '' = phantom.")),
     _param("profile", str, typer.Option("paper", "--profile", help="Parameter profile.")),
     *[f.parameter for f in _RUN_FLAGS], _SET, _PARAMS_FILE, *_CLUSTER_PARAMS, _NAMESPACE, _VERSION_NAME,
     _param("gan_checkpoints", str, typer.Option("", "--gan-checkpoints", envvar="LUSYNTH_GAN_CHECKPOINTS",
                                                  help="s3://bucket/prefix where GAN training mirrors its resumable state, so a retried "
                                                       "task resumes; '' = off."))],
    name="submit", doc="Upload the pipeline version and run it (or create a recurring run with --schedule) on a Kubeflow Pipelines host."))
