"""Every conversation with MLflow goes through this module.

The tracking URI comes from ``MLFLOW_TRACKING_URI``; with none set, a local SQLite store under the
stage's output directory (``<out>/mlruns.db``; artifacts beside it), so a researcher needs no
server. Metrics are buffered and sent with ``log_batch`` (one request per flush, not per value).

Runs and lineage:

- :func:`parent_run` opens one run per pipeline run and exports its id in ``LUSYNTH_PARENT_RUN_ID``
  (and the resolved tracking URI and experiment), so every stage run opened by :func:`stage_run`
  -- in this process, a KFP subprocess, a DVC stage or a CLI call -- nests under it in one store.
- Every run carries lineage tags (:func:`lineage_tags`): git commit, data digest(s), DVC revision,
  KFP run id, profile, seed. ``mlflow.source.git.commit`` is set too, so the UI shows the commit.
- Frame stores are recorded as MLflow dataset inputs (:func:`log_frame_store_input`) with their
  content digest and a context (``training``, ``synthetic``, ``holdout``).
- System metrics (CPU, memory, disk, network; GPU when present) are sampled by MLflow's
  ``SystemMetricsMonitor`` on a background thread (``LUSYNTH_SYSTEM_METRICS=0`` turns it off;
  the interval is ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``, default 10 s here).

Failures: an HTTP server that does not answer ``/health`` fails at the start of a run with a
message naming the URI (:func:`check_reachable`), not an hour later. Transient HTTP failures
(429, 5xx, connection resets) are retried by MLflow's own HTTP layer with exponential backoff;
:func:`configure_http_retries` sets bounded defaults (5 retries, backoff factor 1 -> ~30 s in all,
30 s per request) unless the ``MLFLOW_HTTP_REQUEST_*`` variables are already set.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lusynth.errors import LusynthError

DEFAULT_EXPERIMENT = "lusynth"
PARENT_RUN_ENV = "LUSYNTH_PARENT_RUN_ID"
GIT_COMMIT_ENV = "LUSYNTH_GIT_COMMIT"
DVC_REV_ENV = "LUSYNTH_DVC_REV"
KFP_RUN_ID_ENV = "KFP_RUN_ID"
PROFILE_ENV = "LUSYNTH_PROFILE"
SYSTEM_METRICS_ENV = "LUSYNTH_SYSTEM_METRICS"
DATASET_CONTEXTS = ("training", "synthetic", "holdout", "validation")
_FLUSH_EVERY = 500
# MLflow's defaults retry for ~4 minutes (7 retries, factor 2); a pipeline stage should give up
# sooner with a clear error, but still ride out a server restart or a proxy's 503.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_SYSTEM_METRICS_INTERVAL_S = 10.0

_log = logging.getLogger(__name__)


class TrackingError(LusynthError):
    """MLflow cannot be reached or refused a request."""


def configure_http_retries() -> None:
    """Bounded retry/backoff/timeouts for MLflow's HTTP client, unless the user set their own."""
    for k, v in _HTTP_DEFAULTS.items():
        os.environ.setdefault(k, v)


def tracking_uri(local_dir: str | os.PathLike[str] | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in ``local_dir`` (default: cwd)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    base = Path(local_dir or ".").resolve()
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base / 'mlruns.db'}"


def check_reachable(uri: str, *, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - URI is the user's tracking server
            if resp.status == 200:
                return
            raise TrackingError(f"MLflow tracking server {uri} answered /health with HTTP {resp.status}")
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable ({exc}); start it, fix MLFLOW_TRACKING_URI, "
            "or unset MLFLOW_TRACKING_URI to track into a local SQLite store"
        ) from None


def mlflow_client(local_dir: str | os.PathLike[str] | None = None) -> Any:
    """An ``MlflowClient`` on :func:`tracking_uri`, after the reachability check and retry setup."""
    from mlflow.tracking import MlflowClient

    configure_http_retries()
    uri = tracking_uri(local_dir)
    check_reachable(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# --------------------------------------------------------------------------------------------
# lineage


@functools.lru_cache(maxsize=8)
def _git_head(cwd: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) >= 40 else None


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """``git rev-parse HEAD`` of the working directory's repository, else ``LUSYNTH_GIT_COMMIT``.

    The package directory is tried after ``cwd``: a KFP/DVC task may run from a scratch directory.
    """
    for d in (cwd or os.getcwd(), str(Path(__file__).resolve().parent)):
        sha = _git_head(str(d))
        if sha:
            return sha
    return os.environ.get(GIT_COMMIT_ENV) or None


def _resolved(value: str | None) -> str | None:
    """An env value, unless empty or an unresolved KFP placeholder such as ``{{$.pipeline_job_uuid}}``."""
    if not value or value.startswith("{{"):
        return None
    return value


def kfp_run_id() -> str | None:
    """The KFP run id: ``KFP_RUN_ID`` (the pipeline passes ``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` into it).

    KFP does not put the run id in a task pod's environment by itself (it sets ``KFP_POD_NAME``
    and ``KFP_POD_UID``), so the component must forward the placeholder's value.
    """
    return _resolved(os.environ.get(KFP_RUN_ID_ENV))


def lineage_tags(
    *,
    data_digests: Mapping[str, str] | None = None,
    profile: str | None = None,
    seed: int | None = None,
) -> dict[str, str]:
    """Tags that say where a run came from: code, data, orchestration run, profile, seed.

    ``data_digests`` maps a role (``real``, ``synthetic.consolidation``, ...) to a frame store's
    content digest; each becomes ``lusynth.data.<role>``, and ``lusynth.data_digest`` holds them
    all, sorted, so one tag identifies the data version of the run.
    """
    tags: dict[str, str] = {}
    sha = git_commit()
    if sha:
        tags["lusynth.git_commit"] = sha
        tags["mlflow.source.git.commit"] = sha
    digests = {k: str(v) for k, v in (data_digests or {}).items() if v}
    for role, d in sorted(digests.items()):
        tags[f"lusynth.data.{role}"] = d
    if digests:
        tags["lusynth.data_digest"] = ",".join(f"{k}={v}" for k, v in sorted(digests.items()))[:5000]
    dvc = _resolved(os.environ.get(DVC_REV_ENV))
    if dvc:
        tags["lusynth.dvc_rev"] = dvc
    run = kfp_run_id()
    if run:
        tags["lusynth.kfp_run_id"] = run
    pod = _resolved(os.environ.get("KFP_POD_NAME"))
    if pod:
        tags["lusynth.kfp_pod"] = pod
    prof = profile or _resolved(os.environ.get(PROFILE_ENV))
    if prof:
        tags["lusynth.profile"] = prof
    if seed is not None:
        tags["lusynth.seed"] = str(int(seed))
    try:
        from lusynth import __version__

        tags["lusynth.version"] = __version__
    except ImportError:  # pragma: no cover - the package always has a version
        pass
    return tags


# --------------------------------------------------------------------------------------------
# runs


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:6000]


class Tracker:
    """A live MLflow run with buffered metrics. Created by :func:`stage_run` / :func:`parent_run`."""

    def __init__(self, client: Any, run_id: str, artifact_uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.artifact_uri = artifact_uri
        self._metrics: list[Any] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a (nested) mapping of parameters; nested keys are joined with '.'."""
        from mlflow.entities import Param

        flat: dict[str, str] = {}
        _flatten("", params, flat)
        items = [Param(k, v) for k, v in sorted(flat.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values turned into strings)."""
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """Buffer metrics; they are sent in batches (and at the end of the run)."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if v is None:
                continue
            self._metrics.append(Metric(k, float(v), ts, int(step)))
        if len(self._metrics) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics now."""
        while self._metrics:
            batch, self._metrics = self._metrics[:1000], self._metrics[1000:]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file or a directory."""
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(p), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as an artifact file."""
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Store ``obj`` as a JSON/YAML artifact file."""
        self.client.log_dict(self.run_id, obj, artifact_file)


class NullTracker(Tracker):
    """What a stage logs to when tracking is off (``RunContext(track=False)``): accepts everything, sends nothing."""

    def __init__(self) -> None:
        super().__init__(client=None, run_id=None, artifact_uri="")  # type: ignore[arg-type]

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        pass

    def flush(self) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        pass


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


def log_frame_store_input(
    tracker: Tracker,
    store_path: str | os.PathLike[str],
    context: str = "training",
    *,
    name: str | None = None,
) -> str:
    """Record a frame store as an MLflow dataset input of the run; return its content digest.

    The dataset is an ``mlflow.data.meta_dataset.MetaDataset`` (source = the store's location,
    schema = the manifest's columns): the pixels stay where they are, the digest identifies them.
    MLflow's digest field holds 36 characters, so the full ``sha256:...`` is also an input tag
    (``lusynth.digest``), beside ``mlflow.data.context``.
    """
    if context not in DATASET_CONTEXTS:
        raise ValueError(f"context={context!r}: use one of {', '.join(DATASET_CONTEXTS)}")
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types.schema import ColSpec, Schema

    from lusynth.data.framestore import open_store

    store = open_store(store_path)
    dataset = MetaDataset(  # type: ignore[abstract]  # mlflow leaves profile abstract
        source=_dataset_source(store.path),
        name=name or f"{store.kind}:{store.path.name}",
        digest=store.digest.removeprefix("sha256:")[:32],
        schema=Schema([ColSpec("string", c) for c in store.manifest.columns]),
    )
    counts = {"frames": len(store), "image_size": store.image_size, "classes": ",".join(store.classes)}
    tags = [InputTag("mlflow.data.context", context), InputTag("lusynth.digest", store.digest),
            *(InputTag(f"lusynth.{k}", str(v)) for k, v in counts.items())]
    tracker.client.log_inputs(tracker.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])
    return store.digest


def _dataset_source(path: Path) -> Any:
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    # mlflow has no plain "local directory" source; an HTTP-style source with a file:// URI
    # keeps the location readable in the UI without pretending to be downloadable
    return HTTPDatasetSource(url=path.resolve().as_uri())


def join_pipeline_run(experiment: str = "", parent_run_id: str = "") -> None:
    """In a pipeline task's process: track into ``experiment`` and nest under ``parent_run_id``
    (empty values leave the environment as it is). Every KFP component calls this first."""
    os.environ.update({k: v for k, v in {"MLFLOW_EXPERIMENT_NAME": experiment, PARENT_RUN_ENV: parent_run_id}.items() if v})
