"""Reaching MLflow: the tracking URI, reachability checks, bounded HTTP retries, telling "the server is
gone" from "the server said no", the experiment of a run, a client."""

from __future__ import annotations

import os
import re
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


#: folder of the SQLite store every stage shares when MLFLOW_TRACKING_URI is unset (dvc.yaml sets it)
TRACKING_DIR_ENV = "LUSYNTH_TRACKING_DIR"


def tracking_uri(local_dir: str | os.PathLike[str] | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in ``LUSYNTH_TRACKING_DIR`` if set (one
    store for every stage of a DVC workspace), else in ``local_dir`` (default: cwd)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    base = Path(os.environ.get(TRACKING_DIR_ENV) or local_dir or ".").resolve()
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base / 'mlruns.db'}"


def reachable(uri: str, *, timeout: float = 2.0) -> bool:
    """Whether ``uri`` answers now: an HTTP server's ``/health`` within ``timeout``; other stores always."""
    try:
        check_reachable(uri, timeout=timeout)
    except TrackingError:
        return False
    return True


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


# HTTP statuses that say "try again later" rather than "this request is wrong"
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means MLflow could not be reached or failed on its side (connection refused,
    timeout, 5xx after MLflow's own retries), False for a request the server rejected (4xx) or a local error."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, requests.exceptions.RequestException):
        status = getattr(exc.response, "status_code", None)
        return status is None or status in _TRANSIENT_STATUS
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, MlflowException):
        # a refused connection reaches us as MlflowException("API request ... failed", INTERNAL_ERROR)
        return exc.get_http_status_code() in _TRANSIENT_STATUS
    return False


def short_reason(exc: BaseException) -> str:
    """A few words on why a request failed (``[Errno 111] Connection refused``), not MLflow's whole chain."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if m:
        return m.group(0).strip()
    m = re.search(r"(timed out|[Tt]imeout|too many (?:\d+ error )?responses|error code \d+|HTTP \d+)", text)
    if m:
        return m.group(0)
    return (text.splitlines() or [type(exc).__name__])[0][:120]


#: on every experiment lusynth creates: MLflow 3's UI opens it in the model-training view (runs,
#: models, datasets) instead of the GenAI view; the value is the UI's ``CUSTOM_MODEL_DEVELOPMENT``
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if absent (a local SQLite store keeps its artifacts beside it)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # beside the database, never inside the stage output that happened to create the
        # experiment: later runs write there, which would change that stage's output
        artifact_location = (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location, tags=EXPERIMENT_TAGS))
    except Exception:
        # two stages starting at once may both try to create it: use the winner's
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)
