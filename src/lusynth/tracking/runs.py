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
RUN_NAME_SEP = " · "


def run_name(stage: str, key: Any = None) -> str:
    """The name of a stage's run: ``stage · class · fraction · seed`` (and ``· fold k`` when the key's
    fold is not 0), from a :class:`~lusynth.keys.GanKey` (class = its label) or a
    :class:`~lusynth.keys.Cell` (class = its arm, with ``×ratio`` for real+synthetic and the GAN
    seed of a synthetic arm when not 0); a list of keys names each; no key: the stage alone."""
    if key is None:
        return stage
    if isinstance(key, (list, tuple)):
        keys = list(key)
        if len(keys) <= 1:
            return run_name(stage, keys[0] if keys else None)
        rest = {run_name("", k).split(RUN_NAME_SEP, 2)[2] for k in keys}  # fraction, seed, fold
        if len(rest) == 1:  # one GAN per class of one grid point: "generate · a+b · 1 · seed 0"
            first = run_name(stage, keys[0]).split(RUN_NAME_SEP)
            return RUN_NAME_SEP.join([stage, "+".join(run_name("", k).split(RUN_NAME_SEP)[1] for k in keys), *first[2:]])
        return RUN_NAME_SEP.join([stage, ", ".join(map(str, keys))])
    if hasattr(key, "arm"):
        what = key.arm + (f" ×{key.ratio:g}" if key.ratio else "")
        seed = f"seed {key.seed}" + (f" (GAN seed {key.gan_seed})" if key.gan_seed else "")
    else:
        what, seed = key.label, f"seed {key.gan_seed}"
    parts = [stage, what, f"{key.fraction:g}", seed]
    if getattr(key, "fold", 0):
        parts.append(f"fold {key.fold}")
    return RUN_NAME_SEP.join(parts)


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


def log_to_parent(metrics: Mapping[str, float] | None = None, tags: Mapping[str, Any] | None = None) -> str | None:
    """Put results on the pipeline's run (``LUSYNTH_PARENT_RUN_ID``) as well, so the run a reviewer opens
    first shows them: the evaluate stage's verdicts and primary metrics. The parent's id, or None when
    there is no parent run. Best effort: a server that refuses it gets one warning line, since the
    stage's own run holds the same numbers (and is spooled when MLflow is gone)."""
    import sys

    parent = os.environ.get(PARENT_RUN_ENV)
    if not parent or not (metrics or tags):
        return None
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    from lusynth.tracking.client import short_reason
    from lusynth.tracking.spool import now_ms

    configure_http_retries()
    ts = now_ms()
    ms = [Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()]
    ts_ = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()]
    try:
        client = MlflowClient(tracking_uri=tracking_uri())
        for i in range(0, len(ms), 1000):  # log_batch takes at most 1000 metrics / 100 tags a request
            client.log_batch(parent, metrics=ms[i:i + 1000])
        for i in range(0, len(ts_), 100):
            client.log_batch(parent, tags=ts_[i:i + 100])
    except Exception as exc:
        print(f"warning: results not put on the pipeline run {parent} ({short_reason(exc)}); they are on the stage's run",
              file=sys.stderr, flush=True)
        return None
    return parent
