"""Reaching MLflow: the tracking URI, a fail-fast reachability check, bounded HTTP retries, a client."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lusynth.errors import LusynthError

# MLflow's defaults retry for ~4 minutes (7 retries, factor 2); a pipeline stage should give up
# sooner with a clear error, but still ride out a server restart or a proxy's 503.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


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
