"""A server's log, read from the byte where one start began: why it died, and whether of a taken port."""

from __future__ import annotations

import re
from pathlib import Path

_FATAL = re.compile(r"^F\d{4} |address already in use|port allocation failed|^Traceback|^\w*Error:", re.IGNORECASE)


def _log_text(path: Path, start: int = 0) -> list[str]:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read().decode(errors="replace").splitlines()


def log_size(path: Path) -> int:
    """The log's size in bytes (0 when it does not exist yet): where the next start's lines begin."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, lines: int = 15, *, start: int = 0) -> str:
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


def bind_failed(path: Path, start: int = 0) -> bool:
    """True when the log (from byte ``start``) says a port was taken as the server bound it."""
    try:
        text = "\n".join(_log_text(path, start)).lower()
    except OSError:
        return False
    # "weed mini" checks its ports first ("Port allocation failed: port N ... is not available");
    # a port taken after that check fails the bind itself ("bind: address already in use").
    return "address already in use" in text or "port allocation failed" in text


def note(log: Path, line: str) -> None:
    """Append one line of lusynth's own to a server's log (the log is the record of its starts)."""
    with open(log, "a") as fh:
        fh.write(line + "\n")
