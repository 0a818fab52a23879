"""What `lusynth run` prints: one line per KFP task, then the results table and paths, within two
screens (80 lines); the KFP executor logs go to RUN_DIR/logs/; a failed task prints its error line
and its log instead of being swallowed. Run as a user runs it: a subprocess whose stdout is a pipe."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: the issue's bound on `make demo`'s whole output
MAX_LINES = 80
#: tiny data on one training fraction (at 0.5 the tiny phantom has too few patients per class for the audit)
RUN = ("--profile", "tiny", "--fractions", "1.0")
#: a task's line: kfp's task name (numbered in a loop), its loop item when it has one, status, seconds
_TASK_LINE = re.compile(r"^(\S+)(?: [^ ]+)*\s+(ok|FAILED|stopped)\s+\d+\.\d s\b")


def _grid_tasks(profile: str, overrides: dict) -> int:
    """Task lines a run prints that grow with the grid: per GAN train-gan, generate, audit; per cell train-classifier."""
    from lusynth.experiment import plan_classifiers, plan_gans
    from lusynth.params import stage_params

    grid = stage_params("experiment", profile, overrides)
    return 3 * len(plan_gans(["consolidation", "no_consolidation"], grid.fractions, grid)) + len(plan_classifiers(grid))


def _lusynth(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", LUSYNTH_STAGE_CACHE=str(tmp / "stage-cache"),
               OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([str(Path(sys.executable).parent / "lusynth"), *args], capture_output=True, text=True, env=env, timeout=1800)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("run-output")
    res = _lusynth("run", *RUN, "--out", str(tmp / "run"), tmp=tmp)
    print(res.stdout + res.stderr)  # shown when a test fails
    return tmp / "run", res


def test_the_whole_output_fits_two_screens(tiny_run) -> None:
    out, res = tiny_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = (res.stdout + res.stderr).splitlines()
    text = "\n".join(lines)
    # one line per task with its status and time, then the table and where things are
    tasks = [m.group(1) for ln in lines if (m := _TASK_LINE.match(ln))]
    for task in ("ingest", "train-gan", "train-gan#2", "generate#2", "audit#2", "train-classifier#4", "evaluate", "export-register"):
        assert task in tasks, (task, text)
    assert all(_TASK_LINE.match(ln).group(2) == "ok" for ln in lines if _TASK_LINE.match(ln)), text  # type: ignore[union-attr]
    assert "(a) real+synthetic vs real" in text and "report:" in text and "models:" in text and "mlflow ui" in text
    # no library chatter on the terminal
    assert " INFO " not in text and "Executing task" not in text and "Traceback" not in text and "[KFP Executor" not in text, text
    # the demo's grid (two fractions) adds task lines only: its whole output is this run's plus those
    demo = len(lines) + _grid_tasks("demo", {}) - _grid_tasks("tiny", {"fractions": [1.0]})
    print(f"lusynth run {' '.join(RUN)}: {len(lines)} lines ({len(tasks)} task lines); the demo's grid: {demo} lines")
    assert len(lines) <= MAX_LINES and demo <= MAX_LINES, text


def test_the_logs_hold_the_kfp_executor_output(tiny_run) -> None:
    out, res = tiny_run
    logs = out / "logs"
    gan_log = (logs / "train-gan.log").read_text()
    # kfp.local's own lines and the task subprocess's output (the component's executor) are in the task's log
    assert "Executing task 'train-gan'" in gan_log and "finished with status SUCCESS" in gan_log
    assert "[KFP Executor" in gan_log and "Got executor_input" in gan_log
    assert len(list(logs.glob("train-gan*.log"))) == 2 and len(list(logs.glob("train-classifier*.log"))) == 4
    assert "Running pipeline" in (logs / "pipeline.log").read_text()


def test_a_failed_task_prints_its_error_and_log(tmp_path: Path) -> None:
    empty = tmp_path / "no-images"
    empty.mkdir()
    res = _lusynth("run", str(empty), "--profile", "tiny", "--out", str(tmp_path / "run"), tmp=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    text = res.stdout + res.stderr
    log = tmp_path / "run" / "logs" / "ingest.log"
    assert any(ln.split()[:2] == ["ingest", "FAILED"] for ln in text.splitlines()) and f"log: {log}" in text, text
    assert "no usable input files" in text, text  # the task's own error line, not only "status FAILURE"
    assert "Traceback" not in text and len(text.splitlines()) < 20, text
    assert "Traceback" in log.read_text()  # the whole story is in the log
