"""A real ``mlflow server`` (SQLite backend, local artifact store, 127.0.0.1) that a test can kill and
start again on the same port and store, as a server that dies and is brought back does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lusynth_dev.ports import free_port


class MlflowServer:
    """One ``mlflow server`` process over a fixed backend store and port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait (up to 90 s) until /health answers and the store serves an API call: /health
        answers before the SQLite store is ready, and the first real request to a fresh server can take
        longer than the short client timeout the tests set (seen in CI: the tracker went offline again
        right after it saw /health)."""
        exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen([exe, "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                                      "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
                                      "--port", str(self.port), "--workers", "1"],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        log.close()
        deadline = time.monotonic() + 90
        for ready, what in ((self.healthy, "answered /health"), (self.api_ready, "answered an API call")):
            while not ready():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mlflow server never {what}; log: {(self.root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)

    def _answers(self, path: str, timeout: float) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def api_ready(self) -> bool:
        """Whether a store-backed API call (search one experiment) answers 200."""
        return self._answers("/api/2.0/mlflow/experiments/search?max_results=1", 30)

    def healthy(self) -> bool:
        """Whether /health answers 200."""
        return self._answers("/health", 2)

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group): a server that dies, not one that shuts down."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self.proc = None
        deadline = time.monotonic() + 10
        while self.healthy() and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def mlflow_server(_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """The module's server, running, with MLFLOW_TRACKING_URI pointing at it and short HTTP retries
    (a dead server is noticed in about a second, not MLflow's default four minutes)."""
    if _server.proc is None:
        _server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _server.url)
    monkeypatch.setenv("LUSYNTH_SYSTEM_METRICS", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", "off")
    return _server


@pytest.fixture(scope="module")
def tiny_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frame store from the `tiny` profile's phantom."""
    from lusynth.cli import main

    out = tmp_path_factory.mktemp("frames") / "frames"
    assert main(["ingest", "--out", str(out), "--profile", "tiny", "--quiet"]) == 0
    return out


@pytest.fixture(autouse=True)
def _no_log_handlers_on_closed_streams() -> Iterator[None]:
    """Earlier tests in the same process (kfp.local, mlflow) leave logging handlers bound to a capture
    stream pytest has since closed; a record sent to one prints '--- Logging error ---' on stderr,
    which these tests read for tracebacks. Drop such stale handlers first (test hygiene only)."""
    import logging

    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    for lg in loggers:
        for h in list(lg.handlers):
            stream = getattr(h, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                lg.removeHandler(h)
    yield
