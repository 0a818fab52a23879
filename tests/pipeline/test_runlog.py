"""lusynth_pipelines.runlog without a pipeline: each thread's lines land in the log of the task it
runs, the view shows one line per task, and a failed task's line names its log and its error."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from lusynth_pipelines.runlog import PlainView, RichView, TaskRouter, error_line


def _two_tasks(router: TaskRouter, fail: bool) -> None:
    """Two tasks at once in two threads, as kfp.local runs a ParallelFor; the second may fail."""
    ready = threading.Barrier(2)

    def run(name: str, job: dict, bad: bool) -> None:
        task = router.begin(name, job)
        ready.wait()
        for i in range(50):
            router.write(f"{name} line {i}\n")
        if bad:
            router.write("Traceback (most recent call last):\n  ...\nlusynth.errors.InputError: frames: too few patients\n")
        router.end(task, not bad)

    threads = [threading.Thread(target=run, args=("train-gan", {"label": "a", "fraction": 1.0, "gan_seed": 0.0, "fold": 0.0}, False)),
               threading.Thread(target=run, args=("train-gan", {"label": "b", "fraction": 0.5, "gan_seed": 1.0, "fold": 0.0}, fail))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    router.write("orchestrator line\n")


def _routed_run(tmp_path: Path, *, fail: bool) -> tuple[TaskRouter, io.StringIO]:
    """The two tasks through a router into tmp_path/logs with a plain view; (router, what the view printed)."""
    (tmp_path / "logs").mkdir()
    term = io.StringIO()
    router = TaskRouter(tmp_path / "logs", PlainView(term, tmp_path))
    _two_tasks(router, fail=fail)
    router.close()
    return router, term


def test_lines_go_to_their_task_log_and_the_view_prints_one_line_per_task(tmp_path: Path) -> None:
    router, term = _routed_run(tmp_path, fail=False)
    logs = {p.name: p.read_text() for p in (tmp_path / "logs").iterdir()}
    assert set(logs) == {"train-gan.log", "train-gan-2.log", "pipeline.log"}
    for name, text in logs.items():
        if name != "pipeline.log":
            assert len(text.splitlines()) == 50 and all(ln.startswith("train-gan line") for ln in text.splitlines())
    assert logs["pipeline.log"] == "orchestrator line\n"
    lines = term.getvalue().splitlines()
    assert len(lines) == 2 and all(" ok " in ln and ln.endswith(" s") for ln in lines), lines
    assert {ln.split()[1] for ln in lines} == {"a@1", "b@0.5"} and any("g1" in ln for ln in lines)


def test_a_failed_task_shows_its_log_and_error_line(tmp_path: Path) -> None:
    router, term = _routed_run(tmp_path, fail=True)
    out = term.getvalue()
    failed = [t for t in router.tasks if t.status == "FAILED"]
    assert len(failed) == 1 and f"log: {failed[0].log}" in out
    assert "lusynth.errors.InputError: frames: too few patients" in out and "Traceback" not in out
    assert error_line(failed[0].log) == "lusynth.errors.InputError: frames: too few patients"


def test_the_live_view_renders_every_task(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    term = io.StringIO()
    view = RichView(term, tmp_path)
    router = TaskRouter(tmp_path / "logs", view)
    view.start(router.tasks)
    _two_tasks(router, fail=True)
    router.stop_running()
    view.stop()
    router.close()
    out = term.getvalue()
    assert "train-gan#2" in out and "FAILED" in out and "ok" in out and "too few patients" in out


def test_a_stream_kept_after_the_run_writes_to_the_original_stderr(tmp_path: Path, capsys) -> None:
    """A logging handler made during the run (MLflow's, when first imported there) keeps the router."""
    import logging
    import sys

    from lusynth_pipelines.runlog import routed_output

    with routed_output(tmp_path / "logs", live=False):
        handler = logging.StreamHandler(sys.stderr)
        handler.stream.write("inside\n")
    handler.stream.write("after the run\n")
    handler.flush()
    assert "after the run" in capsys.readouterr().err
    assert "inside" in (tmp_path / "logs" / "pipeline.log").read_text()


def test_a_second_task_of_one_component_counts_as_the_same_stage(tmp_path: Path) -> None:
    """The compiler names the second classifier loop's task ``train-classifier-2``: the view numbers both
    loops' tasks as one stage, and a loop's placeholder task says what it is."""
    term = io.StringIO()
    router = TaskRouter(tmp_path, PlainView(term, tmp_path))
    for name, job in (("train-classifier", {"arm": "real", "fraction": 1.0}), ("train-classifier-2", {"arm": "synthetic", "fraction": 1.0}),
                      ("train-classifier-2", {})):
        router.end(router.begin(name, job), True)
    router.close()
    heads = [ln.split(" ok ")[0].strip() for ln in term.getvalue().splitlines()]
    assert heads == ["train-classifier real@1", "train-classifier#2 synthetic@1", "train-classifier#3 placeholder (no cell of this loop's arms)"]
    assert sorted(p.name for p in tmp_path.glob("train-classifier*.log")) == ["train-classifier-2.log", "train-classifier-3.log",
                                                                             "train-classifier.log"]
