"""uvicorn for the service, with the connection limits of :class:`~lusynth.serve.limits.ServeLimits`.

uvicorn bounds concurrent connections (``limit_concurrency``: 503 beyond it) and idle keep-alive
time, but not the time a client may take to send a request's headers: a connection that sends a
few bytes now and then would be held forever. :class:`GuardedH11Protocol` closes a connection
that has not completed a request's headers ``header_timeout_s`` after it opened or after its last
answer. Body time is bounded by the app (:func:`lusynth.serve.uploads.receive_body`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from lusynth.serve.limits import ServeLimits

log = logging.getLogger("lusynth.serve")

SERVE_TMP_PREFIX = "lusynth-serve-"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    header_timeout_s: float = ServeLimits.header_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection with the header deadline armed."""
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()  # type: ignore[union-attr]
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            prefix = f"{self.client[0]}:{self.client[1]}: " if self.client else ""
            log.info("%sclosed: no complete request headers within %g s", prefix, self.header_timeout_s)
            self.transport.close()

    def handle_events(self) -> None:
        """Disarm the deadline once a request's headers are complete (a new cycle starts)."""
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        """Re-arm the deadline for the next request (before a pipelined one is handled)."""
        self._arm_header_timer()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with the service's own INFO lines (disconnects, timeouts) beside uvicorn's."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["loggers"]["lusynth.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return cfg


def server_config(app: Any, limits: ServeLimits, *, host: str = "127.0.0.1", port: int = 8080,
                  log_level: str = "info", **kwargs: Any) -> Any:
    """A ``uvicorn.Config`` enforcing ``limits`` on connections and time (one worker)."""
    import uvicorn

    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": limits.header_timeout_s})
    # uvicorn counts the connection being answered too: +1 so that max_connections are served
    return uvicorn.Config(app, host=host, port=port, http=protocol, limit_concurrency=limits.max_connections + 1,
                          timeout_keep_alive=limits.keep_alive_s, workers=1, log_level=log_level,
                          log_config=log_config(), **kwargs)


class _Stopped(Exception):
    """SIGINT/SIGTERM arrived; uvicorn has shut down gracefully and re-raised the signal."""


@contextlib.contextmanager
def _stop_quietly_on_signals() -> Iterator[None]:
    """Let SIGINT/SIGTERM end :func:`serve` through its ``finally`` blocks (temp space removed)
    instead of killing the process when uvicorn re-raises the signal after its shutdown."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        raise _Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stopped as exc:
        log.info("stopped by %s", signal.Signals(exc.args[0]).name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def private_tempdir() -> contextlib.AbstractContextManager[Path]:
    """The serving process's temp space in ``$TMPDIR`` (uploads spooled to disk, registry
    downloads): removed at exit; ones left by killed servers are swept at start
    (:mod:`lusynth.tempspace` markers)."""
    from lusynth import tempspace

    return tempspace.temp_dir(tempfile.gettempdir(), prefix=SERVE_TMP_PREFIX)


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8080, limits: ServeLimits | None = None,
          tracking_dir: str | os.PathLike[str] | None = None, **overrides: Any) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM; its temp dir is removed at exit, and
    ones left by killed servers at start. ``overrides``: :class:`ServeLimits` fields."""
    import dataclasses

    import uvicorn

    from lusynth.runtime import configure_threads
    from lusynth.serve.app import create_app

    configure_threads()
    limits = dataclasses.replace(limits or ServeLimits(), **overrides)
    with private_tempdir() as work, _stop_quietly_on_signals():
        app = create_app(model, limits=limits, tracking_dir=tracking_dir, spool_dir=work)
        uvicorn.Server(server_config(app, limits, host=host, port=port)).run()
