"""Temp space of a serving process: removed at exit, and at the next start after a kill.

Each directory holds a ``.lock`` file that its process keeps ``flock``-ed while it lives. A
directory whose lock can be taken belongs to a process that is gone (killed, crashed), so the
next start removes it; a live server's directory is never touched, whatever its age.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = "lusynth-serve-"
LOCK = ".lock"
#: a directory without a lock file (an older lusynth's, or one being created) is stale after this
UNLOCKED_STALE_S = 60.0

log = logging.getLogger("lusynth.serve")


def sweep_stale(prefix: str = PREFIX, *, base: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove this user's ``prefix*`` directories under ``base`` (default: the temp dir) whose
    process is gone; the removed paths."""
    removed: list[Path] = []
    for d in sorted(Path(base or tempfile.gettempdir()).glob(prefix + "*")):
        try:
            st = d.lstat()
        except OSError:
            continue
        if d.is_symlink() or not d.is_dir() or st.st_uid != os.getuid():
            continue
        try:
            fd = os.open(d / LOCK, os.O_RDWR)
        except FileNotFoundError:
            if time.time() - st.st_mtime >= UNLOCKED_STALE_S:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live server
            os.close(fd)
            continue
        try:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def private_tempdir(prefix: str = PREFIX) -> Iterator[Path]:
    """A new locked temp directory, removed on exit; stale ones of killed processes go first."""
    for d in sweep_stale(prefix):
        log.info("removed %s, left by a serving process that no longer runs", d)
    d = Path(tempfile.mkdtemp(prefix=prefix))
    fd = os.open(d / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.close(fd)
