"""Free TCP ports on 127.0.0.1 for the local servers, chosen where other processes seldom take them."""

from __future__ import annotations

import contextlib
import secrets
import socket
from pathlib import Path

HOST = "127.0.0.1"


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
