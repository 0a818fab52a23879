"""Opening MLflow runs: a pipeline's parent run, nested stage runs with lineage tags, system metrics."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lusynth.tracking.client import check_reachable, configure_http_retries, tracking_uri
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


@contextlib.contextmanager
def _system_metrics(enabled: bool, run_id: str, uri: str) -> Iterator[None]:
    """Sample system metrics into ``run_id`` while the block runs (works for client-created runs)."""
    if not enabled:
        yield
        return
    monitor = None
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        interval = float(os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL") or _SYSTEM_METRICS_INTERVAL_S)
        monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, tracking_uri=uri)
        monitor.start()
    except Exception as exc:  # psutil missing or a platform it cannot read: tracking goes on without
        _log.warning("system metrics off for run %s: %s", run_id, exc)
        monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            with contextlib.suppress(Exception):
                monitor.finish()
                # a stage shorter than one interval would otherwise log nothing: publish the
                # samples taken so far (the loop takes one at its start)
                metrics = monitor.aggregate_metrics()
                if metrics:
                    monitor.publish_metrics(metrics)
                    monitor.mlflow_logger.flush()


def _experiment_id(client: Any, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # beside the database, never inside the stage output that happened to create the
        # experiment: later runs write there, which would change that stage's output
        artifact_location = (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except Exception:
        # two stages starting at once may both try to create it: use the winner's
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


@contextlib.contextmanager
def _open_run(
    stage: str,
    *,
    local_dir: str | os.PathLike[str] | None,
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
    check_reachable(uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    exp_id = _experiment_id(client, name, uri)
    run_tags = {"lusynth.stage": stage, "mlflow.runName": run_name or stage}
    run_tags.update(lineage_tags(data_digests=data_digests, profile=profile, seed=seed))
    parent = os.environ.get(PARENT_RUN_ENV) if nested else None
    if parent:
        run_tags["mlflow.parentRunId"] = parent
    run_tags.update({k: str(v) for k, v in (tags or {}).items()})
    run = client.create_run(exp_id, tags=run_tags, run_name=run_name or stage)
    tracker = Tracker(client, run.info.run_id, run.info.artifact_uri)
    status = "FAILED"
    try:
        with _system_metrics(_system_metrics_enabled(system_metrics), tracker.run_id, uri):
            if params:
                tracker.log_params(params)
            yield tracker, uri, name
            status = "FINISHED"
    finally:
        with contextlib.suppress(Exception):
            tracker.flush()
        client.set_terminated(tracker.run_id, status=status)


@contextlib.contextmanager
def stage_run(
    stage: str,
    *,
    local_dir: str | os.PathLike[str] | None = None,
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
    """
    with _open_run(stage, local_dir=local_dir, experiment=experiment, run_name=run_name, params=params, tags=tags,
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
    with _open_run("pipeline", local_dir=local_dir, experiment=experiment, run_name=name, params=params, tags=tags,
                   data_digests=data_digests, profile=profile, seed=seed, system_metrics=system_metrics,
                   nested=False) as (tracker, uri, exp_name):
        from lusynth.runtime import temporary_env

        exported = {PARENT_RUN_ENV: tracker.run_id, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": exp_name}
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
