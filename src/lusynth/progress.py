"""Progress for long work: a rich bar on a terminal, periodic plain lines everywhere else.

Inside a KFP task (local subprocess or a cluster pod) stdout is not a terminal and a live bar
would print nothing until the end, so the same call logs one line every ``every_s`` seconds
(and at the end) with done/total, rate and ETA — readable in ``kfp.local`` output and pod logs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

Advance = Callable[..., None]


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


@contextlib.contextmanager
def progress(
    total: int,
    label: str,
    *,
    enabled: bool = True,
    unit: str = "it",
    every_s: float = 10.0,
    completed: int = 0,
) -> Iterator[Advance]:
    """Yield ``advance(n=1, **fields)``; ``fields`` (e.g. ``loss_d=0.7``) are shown beside the bar."""
    if not enabled:
        yield lambda n=1, **_: None
        return
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        cols = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        with Progress(*cols, transient=False) as bar:
            task = bar.add_task(label, total=total, completed=completed, info="")

            def advance_bar(n: int = 1, **fields: Any) -> None:
                info = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
                bar.update(task, advance=n, info=info)

            yield advance_bar
        return

    state = {"done": completed, "last": 0.0}
    t0 = time.perf_counter()

    def line(fields: dict[str, Any]) -> None:
        dt = time.perf_counter() - t0
        rate = (state["done"] - completed) / dt if dt > 0 else 0.0
        eta = (total - state["done"]) / rate if rate > 0 else float("inf")
        extra = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        pct = 100.0 * state["done"] / total if total else 100.0
        print(f"[{label}] {state['done']}/{total} {unit} ({pct:.0f}%)  {rate:.1f} {unit}/s  ETA {_fmt_eta(eta)}  {extra}".rstrip(),
              file=sys.stderr, flush=True)

    last_fields: dict[str, Any] = {}

    def advance(n: int = 1, **fields: Any) -> None:
        state["done"] += n
        last_fields.update(fields)
        now = time.perf_counter()
        if now - state["last"] >= every_s:
            state["last"] = now
            line(last_fields)

    state["last"] = time.perf_counter()
    yield advance
    line(last_fields)


def note(label: str, message: str, *, enabled: bool = True) -> None:
    """One status line for work that has steps but no count (``evaluate: auditing ...``), on stderr."""
    if enabled:
        print(f"{label}: {message}", file=sys.stderr, flush=True)
