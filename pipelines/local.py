"""``lusynth run``: the whole KFP pipeline on this machine with ``kfp.local`` (subprocess runner).

Each task runs in a subprocess of the current interpreter, with the installed lusynth; outputs
land under ``<out>/kfp/``; MLflow tracks into ``<out>/mlflow.db`` unless ``MLFLOW_TRACKING_URI``
is set; the stage cache (``LUSYNTH_STAGE_CACHE``, default ``~/.cache/lusynth/stages``) makes a
second run with the same inputs restore every stage instead of recomputing it.
"""

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: kfp.local's orchestrator runs at most this many ParallelFor iterations at once (kfp 2.17)
LOCAL_PARALLELISM = 2


@dataclass
class LocalRun:
    out: Path
    results: Path  # the evaluate stage's output directory (report.html, report.md, report.json)
    models: Path  # the export_register stage's output (ONNX files, export.json with the registry versions)
    seconds: float
    tracking_uri: str
    parent_run_id: str | None

    @property
    def report_html(self) -> Path:
        return self.results / "report.html"

    @property
    def report_md(self) -> Path:
        return self.results / "report.md"


def run_local(
    out: str | os.PathLike[str],
    *,
    source: str = "",
    profile: str = "demo",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    experiment: str = "lusynth",
    kfp_cache: bool = False,
) -> LocalRun:
    """Run the pipeline locally; raise if any task fails (its log names the stage). Every parameter
    is resolved and checked before the first task starts.

    ``kfp_cache``: also let KFP's own cache (kfp.local's, under ``<out>/kfp/.kfp_cache``) serve tasks,
    with the caching options a cluster uses, to see what a cluster's cache would serve; its keys do
    not cover edits to lusynth's code, hence off by default (the stage cache covers them)."""
    from kfp import local

    from lusynth.experiment import run_overrides
    from lusynth.params import SECTIONS, flat_params, resolve
    from lusynth.runtime import cpu_quota, temporary_env
    from lusynth.tracking import parent_run, tracking_uri
    from lusynth.tracking.runs import RUN_NAME_SEP
    from lusynth_pipelines.experiment import make_pipeline

    resolved_overrides = run_overrides(profile, overrides)
    resolved = resolve(SECTIONS, profile, resolved_overrides)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(out)
    t0 = time.perf_counter()
    # kfp.local runs up to 2 loop iterations at once: give each task its share of the CPUs, since
    # two tasks each starting a thread per core made training 2-3x slower on 2 cores (measured)
    threads = os.environ.get("LUSYNTH_THREADS") or str(max(1, cpu_quota() // LOCAL_PARALLELISM))
    with temporary_env({"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": experiment, "LUSYNTH_THREADS": threads}), \
            parent_run(f"pipeline{RUN_NAME_SEP}{profile}", local_dir=out, experiment=experiment,
                       params={"source": source or "phantom", "profile": profile, **flat_params(resolved)},
                       tags={"lusynth.engine": "kfp.local", "lusynth.profile": profile}) as parent:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(out / "kfp"), enable_caching=kfp_cache)
        pipeline = make_pipeline(local=True, engine_cache=kfp_cache)
        # the tasks nest under the parent run through the environment parent_run exported, not an input that is
        # new in every run (a cluster's tasks find theirs by the KFP run id): KFP's cache keys a task on its inputs
        task = pipeline(source=source, profile=profile, overrides=resolved_overrides, experiment=experiment, parent_run_id="")
        results, models = Path(task.outputs["results"].path), Path(task.outputs["models"].path)
        parent.set_tags({"lusynth.results": str(results), "lusynth.models": str(models)})
    seconds = time.perf_counter() - t0
    (out / "latest.json").write_text(json.dumps({"results": str(results), "models": str(models), "seconds": round(seconds, 1),
                                                 "tracking_uri": uri}, indent=2) + "\n")
    return LocalRun(out=out, results=results, models=models, seconds=seconds, tracking_uri=uri, parent_run_id=parent.run_id)
