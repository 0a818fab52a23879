"""What ``lusynth run`` shows: one line per KFP task on the terminal, every other line in ``RUN_DIR/logs/``.

``kfp.local`` prints each task's executor output (the task subprocess's stdout and stderr, its
own INFO lines, MLflow's and ONNX's messages) through this process's ``sys.stdout``, from the
thread that runs the task. :func:`routed_output` replaces ``sys.stdout``/``sys.stderr`` with a
:class:`TaskRouter` that sends each thread's lines to the log of the task that thread runs
(``logs/<task>.log``, ``logs/<task>-2.log`` for the second task of that name ...) and the rest, plus
whatever reaches file descriptors 1 and 2 directly, to ``logs/pipeline.log``. A task's start, end
and status come from wrapping kfp.local's task dispatcher (``run_single_task_implementation``, the
call that runs one task in its thread), not from its INFO lines: kfp.local swaps the root logger's
handlers per task, so with two tasks at once some of those lines are dropped.

The view shows a task when it starts and when it ends (name, status, seconds): a live table on a
terminal (rich), plain lines otherwise. A failed task is never swallowed: its line says FAILED,
names its log and repeats the task's error line.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lusynth.keys import family_tag

__all__ = ["PlainView", "RichView", "TaskRouter", "TaskState", "error_line", "routed_output"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
#: the line of a log that says why a task failed: an exception's last line, or lusynth's "error: ..."
_ERROR = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit)\b.*|error: .*)$")


@dataclass
class TaskState:
    """One KFP task of the run as the view shows it."""

    name: str  # kfp's task name, numbered when a loop runs it again: train-gan, train-gan#2, ...
    log: Path
    started: float = field(default_factory=time.monotonic)
    status: str = "running"  # running | ok | FAILED | stopped
    seconds: float | None = None

    def finish(self, status: str) -> None:
        self.status, self.seconds = status, time.monotonic() - self.started

    def elapsed(self) -> float:
        return self.seconds if self.seconds is not None else time.monotonic() - self.started


def error_line(log: Path) -> str:
    """The last line of ``log`` that says why its task failed ('' when none does)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    for ln in reversed(lines):
        if _ERROR.match(ln) and not _END.search(ln):
            return ln
    return ""


class PlainView:
    """One line per finished task (and a FAILED task's log and error line): for logs, CI and pipes."""

    def __init__(self, stream: TextIO, root: Path) -> None:
        self.stream, self.root = stream, root

    def start(self, tasks: list[TaskState]) -> None:
        pass

    def update(self, task: TaskState) -> None:
        if task.status == "running":
            return
        self.stream.write(_task_line(task, self.root) + "\n")
        self.stream.flush()

    def stop(self) -> None:
        pass


class RichView:
    """A live table of the tasks on a terminal; it stays on screen when the run ends."""

    def __init__(self, stream: TextIO, root: Path) -> None:
        from rich.console import Console

        self.console = Console(file=stream, highlight=False)
        self.root = root
        self.tasks: list[TaskState] = []
        self.live: Any = None

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for t in self.tasks:
            style = {"running": "cyan", "ok": "green", "FAILED": "bold red"}.get(t.status, "yellow")
            row = [t.name, f"[{style}]{t.status}[/]", f"{t.elapsed():6.1f} s"]
            if t.status == "FAILED":
                row.append(f"log: {_rel(t.log, self.root)}")
            table.add_row(*row)
        return table

    def start(self, tasks: list[TaskState]) -> None:
        from rich.live import Live

        self.tasks = tasks
        self.live = Live(self._render(), console=self.console, refresh_per_second=2, get_renderable=self._render)
        self.live.start()

    def update(self, task: TaskState) -> None:
        if self.live is not None:
            self.live.refresh()
        if task.status == "FAILED":
            err = error_line(task.log)
            if err:
                self.console.print(f"  {task.name}: {err}", markup=False, highlight=False)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _task_line(task: TaskState, root: Path) -> str:
    line = f"{task.name:<40} {task.status:<7} {task.elapsed():7.1f} s"
    if task.status == "FAILED":
        line += f"  log: {task.log}"
        err = error_line(task.log)
        if err:
            line += f"\n  {task.name}: {err}"
    return line


class TaskRouter(io.TextIOBase):
    """A text stream standing in for ``sys.stdout``/``sys.stderr`` while kfp.local runs: each
    thread's complete lines go to the log of the task it runs, other lines to ``pipeline.log``."""

    def __init__(self, log_dir: Path, view: PlainView | RichView) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.view = view
        self.tasks: list[TaskState] = []
        self._lock = threading.RLock()
        self._pending: dict[int, str] = {}
        self._task_of: dict[int, TaskState] = {}
        self._files: dict[Path, TextIO] = {}
        self._seen: Counter[str] = Counter()
        self.main = self._file(log_dir / "pipeline.log")
        #: where writes go once the run is over (a logging handler created during the run keeps this
        #: stream; it must not hit a closed file later)
        self.after: TextIO | None = None

    def _file(self, path: Path) -> TextIO:
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = open(path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in close()
        return f

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        if self.closed:
            return self.after.write(s) if self.after is not None else len(s)
        tid = threading.get_ident()
        with self._lock:
            *lines, rest = (self._pending.pop(tid, "") + s).split("\n")
            if rest:
                self._pending[tid] = rest
            for line in lines:
                self._line(tid, line)
        return len(s)

    def _line(self, tid: int, line: str) -> None:
        task = self._task_of.get(tid)
        (self._file(task.log) if task is not None else self.main).write(_ANSI.sub("", line).rstrip("\r") + "\n")

    def begin(self, name: str, job: Any = None) -> TaskState:
        """The calling thread now runs KFP task ``name`` (``job``: its loop item, shown when it is a task key).
        A second task of one component (the compiler names it ``train-classifier-2``) counts as the same
        task: one numbering per stage."""
        name = _COMPILER_SUFFIX.sub("", name)
        with self._lock:
            self._flush_pending(threading.get_ident())
            self._seen[name] += 1
            n = self._seen[name]
            label = name if n == 1 else f"{name}#{n}"
            task = TaskState(label + (f" {_job_label(job)}" if _job_label(job) else ""),
                             self.log_dir / (f"{name}.log" if n == 1 else f"{name}-{n}.log"))
            self.tasks.append(task)
            self._task_of[threading.get_ident()] = task
            self.view.update(task)
            return task

    def end(self, task: TaskState, ok: bool) -> None:
        """The calling thread's task ended."""
        with self._lock:
            tid = threading.get_ident()
            self._flush_pending(tid)
            task.finish("ok" if ok else "FAILED")
            if self._task_of.get(tid) is task:
                del self._task_of[tid]
            self._file(task.log).flush()
            self.view.update(task)

    def _flush_pending(self, tid: int) -> None:
        rest = self._pending.pop(tid, "")
        if rest:
            self._line(tid, rest)

    def flush(self) -> None:
        if self.closed:
            return
        with self._lock:
            for f in self._files.values():
                f.flush()

    def stop_running(self) -> None:
        """The run stopped (an exception left kfp.local): tasks still running are marked stopped."""
        with self._lock:
            for tid in list(self._pending):
                self._flush_pending(tid)
            for t in self.tasks:
                if t.status == "running":
                    t.finish("stopped")
                    self.view.update(t)
            self._task_of.clear()

    def close(self) -> None:
        with self._lock:
            for tid in list(self._pending):
                self._flush_pending(tid)
            for f in self._files.values():
                f.close()
            self._files.clear()
        super().close()


#: the suffix the KFP compiler gives a second task (and component) made from one component
_COMPILER_SUFFIX = re.compile(r"-\d+$")


def _num(v: Any) -> str:
    return f"{float(v):g}" if isinstance(v, (int, float)) else str(v)


def _job_label(job: Any) -> str:
    """A loop item as a short key: ``consolidation@1``, ``real+synthetic@0.5 r2 g1`` ('' when not a task key)."""
    if job == {}:  # a classifier loop's placeholder (lusynth.stages.classifier_jobs)
        return "placeholder (no cell of this loop's arms)"
    if not isinstance(job, dict) or not ("label" in job or "arm" in job):
        return ""
    head = f"{job.get('label') or job.get('arm')}" + (f"@{_num(job['fraction'])}" if "fraction" in job else "")
    extra = [f"{tag}{_num(job[k])}" for k, tag in (("seed", "s"), ("ratio", "r"), ("gan_seed", "g"), ("fold", "k")) if job.get(k)]
    return " ".join([head, *extra]) + family_tag(str(job.get("generator") or ""), " ")  # the paper's DCGAN unnamed, as before


@contextlib.contextmanager
def _traced_tasks(router: TaskRouter) -> Iterator[None]:
    """kfp.local's task dispatcher, reporting each task's start and end (with its status) to ``router``."""
    from kfp.local import executor_input_utils, status, task_dispatcher

    original = task_dispatcher.run_single_task_implementation

    def traced(*args: Any, **kwargs: Any) -> Any:
        component = kwargs["component_name"] if "component_name" in kwargs else args[1]
        arguments = kwargs.get("arguments") if "arguments" in kwargs else (args[4] if len(args) > 4 else None)
        task = router.begin(executor_input_utils.get_local_task_resource_name(component), (arguments or {}).get("job"))
        ok = False
        try:
            outputs, task_status = original(*args, **kwargs)
            ok = task_status == status.Status.SUCCESS
            return outputs, task_status
        finally:
            router.end(task, ok)

    task_dispatcher.run_single_task_implementation = traced
    try:
        yield
    finally:
        task_dispatcher.run_single_task_implementation = original


def _terminal() -> tuple[TextIO, int | None]:
    """Where the view writes, and the copy of fd 1 it owns (None when stdout is not fd 1, e.g.
    under pytest's capture: then it writes to that stream, which nothing here redirects)."""
    try:
        if sys.stdout.fileno() == 1:
            fd = os.dup(1)
            return open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False), fd  # noqa: SIM115
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    return sys.stdout, None


@contextlib.contextmanager
def routed_output(log_dir: str | os.PathLike[str], *, live: bool | None = None) -> Iterator[TaskRouter]:
    """Run the block with its output in ``log_dir`` and one line per KFP task on the terminal
    (``live``: the rich table; default when stdout is a terminal)."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    terminal, term_fd = _terminal()
    live = terminal.isatty() if live is None else live
    root = log_dir.parent
    view: PlainView | RichView = RichView(terminal, root) if live else PlainView(terminal, root)
    router = TaskRouter(log_dir, view)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    sink = os.open(log_dir / "pipeline.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    old_out, old_err = sys.stdout, sys.stderr
    try:
        # what bypasses sys.stdout (C libraries, handlers bound to the original streams) goes to the log too
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        sys.stdout = sys.stderr = router
        view.start(router.tasks)
        try:
            with _traced_tasks(router):
                yield router
        except BaseException:
            router.stop_running()
            raise
        finally:
            view.stop()
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        router.after = old_err
        router.close()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(sink)
        if term_fd is not None:
            terminal.flush()
            os.close(term_fd)
