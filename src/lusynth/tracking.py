"""Every conversation with MLflow goes through this module.

The tracking URI comes from ``MLFLOW_TRACKING_URI``; with none set, a local SQLite store under the
stage's output directory (``<out>/mlruns.db``; artifacts beside it), so a researcher needs no
server. Metrics are buffered and sent with ``log_batch`` (one request per flush, not per value).
A stage run nests under the pipeline's parent run when ``LUSYNTH_PARENT_RUN_ID`` is set.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lusynth.errors import LusynthError

DEFAULT_EXPERIMENT = "lusynth"
PARENT_RUN_ENV = "LUSYNTH_PARENT_RUN_ID"
_FLUSH_EVERY = 500


class TrackingError(LusynthError):
    """MLflow cannot be reached or refused a request."""


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


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:6000]


class Tracker:
    """A live MLflow run with buffered metrics. Created by :func:`stage_run`."""

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
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, obj, artifact_file)


@contextlib.contextmanager
def stage_run(
    stage: str,
    *,
    local_dir: str | os.PathLike[str] | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[Tracker]:
    """Open an MLflow run for one stage; it ends FINISHED on success and FAILED on an exception."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(local_dir)
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    exp = client.get_experiment_by_name(name)
    if exp is None:
        artifact_location = None
        if uri.startswith("sqlite:///") and local_dir is not None:
            artifact_location = (Path(local_dir).resolve() / "mlartifacts").as_uri()
        exp_id = client.create_experiment(name, artifact_location=artifact_location)
    else:
        exp_id = exp.experiment_id
    run_tags = {"lusynth.stage": stage, "mlflow.runName": run_name or stage}
    parent = os.environ.get(PARENT_RUN_ENV)
    if parent:
        run_tags["mlflow.parentRunId"] = parent
    run_tags.update({k: str(v) for k, v in (tags or {}).items()})
    run = client.create_run(exp_id, tags=run_tags, run_name=run_name or stage)
    tracker = Tracker(client, run.info.run_id, run.info.artifact_uri)
    del mlflow  # imported only to fail early if mlflow is missing
    status = "FAILED"
    try:
        if params:
            tracker.log_params(params)
        yield tracker
        status = "FINISHED"
    finally:
        with contextlib.suppress(Exception):
            tracker.flush()
        client.set_terminated(tracker.run_id, status=status)
