"""Temporary space: under the directory a run writes to, never in ``/tmp``, and never left behind.

Every temporary directory lusynth makes comes from here (:func:`temp_dir`, :func:`make_temp_dir`).
Each one lies in a folder the caller names (the output's parent, the output itself), holds a
marker file (:data:`MARKER`: owner pid, host, boot and process start time) and is removed

- when its block exits, cleanly or by an exception (``KeyboardInterrupt`` included);
- on SIGTERM or SIGHUP, when lusynth owns the signal (the handler removes every live temporary
  directory, then lets the signal kill the process as it would have);
- at the next start after a ``kill -9``: :func:`sweep` removes a directory whose marker names a
  process of this host that is gone. A directory without lusynth's marker, or owned by a live
  process or by another host (a shared volume), is never touched.

Why not ``/tmp``: an ``s3://`` ingest downloads raw data there (DICOM headers included), and a
killed run left it for good; under the output folder it sits where the operator looks and is
cleaned by the next run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "PREFIX", "discard", "make_temp_dir", "release", "sweep", "temp_dir"]

PREFIX = ".lusynth-tmp-"
MARKER = ".lusynth-tmp.json"  # inside every temporary directory: who owns it (see owner())

# live temporary directories -> the pid that made them: a forked child (a DataLoader worker) inherits
# this table and the signal handler, and must never remove its parent's directories
_live: dict[Path, int] = {}
_lock = threading.Lock()
_handlers_installed = False


def _read_first(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux ``/proc``), '' where unknown:
    with the boot id it tells a dead owner from a new process that reuses its pid."""
    stat = _read_first(f"/proc/{pid}/stat")
    if not stat:
        return ""
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def owner() -> dict[str, Any]:
    """This process as a marker names it."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot": _read_first("/proc/sys/kernel/random/boot_id"),
            "start": _start_time(pid)}


def _owner_gone(marker: dict[str, Any]) -> bool:
    """Whether the process a marker names has certainly ended (False when in doubt)."""
    if marker.get("host") != socket.gethostname():
        return False  # a shared volume: another machine's process may be alive
    boot = _read_first("/proc/sys/kernel/random/boot_id")
    if marker.get("boot") and boot and marker["boot"] != boot:
        return True  # the machine rebooted since
    pid = marker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return bool(marker.get("start")) and _start_time(pid) not in ("", marker["start"])  # the pid was reused


def _install_handlers() -> None:
    """SIGTERM/SIGHUP remove the live temporary directories, then kill the process as before.
    Only where the default action is installed (an application's own handler is left alone)."""
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True
    atexit.register(_cleanup_all)

    def handler(signum: int, frame: Any) -> None:
        _cleanup_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, handler)


def _cleanup_all() -> None:
    pid = os.getpid()
    with _lock:
        live = [d for d, owner_pid in _live.items() if owner_pid == pid]
        for d in live:
            del _live[d]
    for d in live:
        shutil.rmtree(d, ignore_errors=True)


def sweep(parent: str | os.PathLike[str], prefix: str = PREFIX) -> list[Path]:
    """Remove the temporary directories in ``parent`` (names starting with ``prefix``) that carry
    lusynth's marker and whose owner has ended; return what was removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(parent).glob(f"{prefix}*"))
    except OSError:
        return removed
    for d in entries:
        if d.is_symlink() or not d.is_dir():
            continue
        try:
            marker = json.loads((d / MARKER).read_text())
        except (OSError, ValueError):
            continue  # not ours (or not readable): never removed
        if isinstance(marker, dict) and _owner_gone(marker):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def make_temp_dir(parent: str | os.PathLike[str], *, prefix: str = PREFIX) -> Path:
    """A new marked temporary directory in ``parent`` (created if absent), after sweeping the stale
    ones there. The caller removes it with :func:`discard` (or keeps its content via :func:`release`);
    until then a SIGTERM or the process's exit removes it."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep(parent, prefix)
    _install_handlers()
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    with _lock:
        _live[path] = os.getpid()
    (path / MARKER).write_text(json.dumps(owner()))
    return path


def release(path: Path) -> None:
    """Stop managing ``path``: its marker is removed and exit no longer deletes it (its content was
    moved out or kept on purpose)."""
    with _lock:
        _live.pop(path, None)
    with contextlib.suppress(FileNotFoundError):
        (path / MARKER).unlink()


def discard(path: Path) -> None:
    """Remove a temporary directory made by :func:`make_temp_dir`."""
    with _lock:
        _live.pop(path, None)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def temp_dir(parent: str | os.PathLike[str], *, prefix: str = PREFIX) -> Iterator[Path]:
    """A marked temporary directory in ``parent`` for the block; removed when the block exits."""
    path = make_temp_dir(parent, prefix=prefix)
    try:
        yield path
    finally:
        discard(path)
