"""Opening MLflow runs: a pipeline's parent run, nested stage runs with lineage tags, system metrics."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from lusynth.tracking.client import configure_http_retries, tracking_uri
from lusynth.tracking.lineage import PROFILE_ENV, lineage_tags
from lusynth.tracking.tracker import NullTracker, Tracker

DEFAULT_EXPERIMENT = "lusynth"
PARENT_RUN_ENV = "LUSYNTH_PARENT_RUN_ID"
SYSTEM_METRICS_ENV = "LUSYNTH_SYSTEM_METRICS"
_SYSTEM_METRICS_INTERVAL_S = 10.0

_log = logging.getLogger(__name__)


def _system_metrics_enabled(requested: bool | None) -> bool:
    if requested is not None:
        return requested
    return os.environ.get(SYSTEM_METRICS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _SystemMetrics:
    """MLflow's system monitors (CPU, memory, disk, network; GPU when present), sampled on a thread and
    logged through the run's :class:`Tracker`, so they are buffered and spooled like every other metric
    (MLflow's own monitor thread talks to the server directly and prints a warning when it is gone)."""

    def __init__(self, tracker: Tracker, interval: float) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # only its monitors are used; its thread and its logger are never started
        self.monitor = SystemMetricsMonitor(tracker.run_id or "spooled", sampling_interval=interval, tracking_uri=tracker.uri)
        self.tracker, self.interval = tracker, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lusynth-system-metrics", daemon=True)
        self.monitor.collect_metrics()  # one sample now: a stage shorter than one interval still logs one
        self._thread.start()

    def _loop(self) -> None:
        step = 0
        while not self._stop.wait(self.interval):
            self._publish(step)
            step += 1
            self.monitor.collect_metrics()
        self._publish(step)

    def _publish(self, step: int) -> None:
        try:
            metrics = self.monitor.aggregate_metrics()
            for m in self.monitor.monitors:
                m.clear_metrics()
            if metrics:
                self.tracker.log_metrics({f"system/{k}": v for k, v in metrics.items()}, step=step)
        except Exception as exc:  # a refused batch must not end the sampling thread with a traceback
            _log.debug("system metrics not logged: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


@contextlib.contextmanager
def _system_metrics(enabled: bool, tracker: Tracker) -> Iterator[None]:
    """Sample system metrics into ``tracker``'s run while the block runs."""
    if not enabled:
        yield
        return
    sampler = None
    try:
        interval = float(os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL") or _SYSTEM_METRICS_INTERVAL_S)
        sampler = _SystemMetrics(tracker, interval)
    except Exception as exc:  # psutil missing or a platform it cannot read: tracking goes on without
        _log.warning("system metrics off for run %s: %s", tracker.run_id, exc)
    try:
        yield
    finally:
        if sampler is not None:
            sampler.stop()


@contextlib.contextmanager
def _open_run(
    stage: str,
    *,
    local_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str] | None,
    experiment: str | None,
    run_name: str | None,
    params: Mapping[str, Any] | None,
    tags: Mapping[str, Any] | None,
    data_digests: Mapping[str, str] | None,
    profile: str | None,
    seed: int | None,
    system_metrics: bool | None,
    nested: bool,
) -> Iterator[tuple[Tracker, str, str]]:
    configure_http_retries()
    uri = tracking_uri(local_dir)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    run_tags = {"lusynth.stage": stage, "mlflow.runName": run_name or stage}
    run_tags.update(lineage_tags(data_digests=data_digests, profile=profile, seed=seed))
    parent = os.environ.get(PARENT_RUN_ENV) if nested else None
    if parent:
        run_tags["mlflow.parentRunId"] = parent
    run_tags.update({k: str(v) for k, v in (tags or {}).items()})
    tracker = Tracker(client, uri, stage=stage, out_dir=out_dir if out_dir is not None else local_dir)
    tracker.adopt_earlier()
    tracker.start(experiment=name, tags=run_tags, run_name=run_name or stage)
    status = "FAILED"
    try:
        with _system_metrics(_system_metrics_enabled(system_metrics), tracker):
            if params:
                tracker.log_params(params)
            yield tracker, uri, name
            status = "FINISHED"
    finally:
        tracker.close(status)


@contextlib.contextmanager
def stage_run(
    stage: str,
    *,
    local_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    data_digests: Mapping[str, str] | None = None,
    profile: str | None = None,
    seed: int | None = None,
    system_metrics: bool | None = None,
) -> Iterator[Tracker]:
    """Open an MLflow run for one stage; it ends FINISHED on success and FAILED on an exception.

    It nests under the pipeline's run when ``LUSYNTH_PARENT_RUN_ID`` is set, and carries the
    lineage tags of :func:`lineage_tags` (``data_digests``, ``profile``, ``seed`` from the caller).
    ``out_dir`` is the stage's output directory (default ``local_dir``): what MLflow could not take
    is spooled there (:mod:`lusynth.tracking.spool`), and what an earlier run spooled there is
    uploaded first.
    """
    with _open_run(stage, local_dir=local_dir, out_dir=out_dir, experiment=experiment, run_name=run_name, params=params, tags=tags,
                   data_digests=data_digests, profile=profile, seed=seed, system_metrics=system_metrics,
                   nested=True) as (tracker, _, _):
        yield tracker


@contextlib.contextmanager
def parent_run(
    name: str = "pipeline",
    *,
    local_dir: str | os.PathLike[str] | None = None,
    experiment: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    data_digests: Mapping[str, str] | None = None,
    profile: str | None = None,
    seed: int | None = None,
    system_metrics: bool | None = None,
) -> Iterator[Tracker]:
    """Open the one run of a pipeline run; stage runs started inside the block nest under it.

    For the block's duration the environment carries ``LUSYNTH_PARENT_RUN_ID``, the resolved
    ``MLFLOW_TRACKING_URI`` (so a local SQLite store is shared by every stage, subprocesses
    included), ``MLFLOW_EXPERIMENT_NAME`` and ``LUSYNTH_PROFILE``; the previous values come back
    afterwards.
    """
    with _open_run("pipeline", local_dir=local_dir, out_dir=None, experiment=experiment, run_name=name, params=params, tags=tags,
                   data_digests=data_digests, profile=profile, seed=seed, system_metrics=system_metrics,
                   nested=False) as (tracker, uri, exp_name):
        from lusynth.runtime import temporary_env

        # a parent run that exists only in a spool has no id yet: its stages then do not nest
        exported = {PARENT_RUN_ENV: tracker.run_id or "", "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": exp_name}
        if profile:
            exported[PROFILE_ENV] = profile
        with temporary_env(exported):
            yield tracker


@contextlib.contextmanager
def optional_stage_run(enabled: bool, **kwargs: Any) -> Iterator[Tracker]:
    """:func:`stage_run` when ``enabled`` (the run context's ``track``), else a :class:`NullTracker`."""
    if not enabled:
        yield NullTracker()
        return
    with stage_run(**kwargs) as tr:
        yield tr


def join_pipeline_run(experiment: str = "", parent_run_id: str = "") -> None:
    """In a pipeline task's process: track into ``experiment`` and nest under ``parent_run_id``
    (empty values leave the environment as it is). Every KFP component calls this first."""
    os.environ.update({k: v for k, v in {"MLFLOW_EXPERIMENT_NAME": experiment, PARENT_RUN_ENV: parent_run_id}.items() if v})
