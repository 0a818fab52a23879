"""What `lusynth run` prints: one line per KFP task, then the results table and paths, within two
screens (80 lines); the KFP executor logs go to RUN_DIR/logs/; a failed task prints its error line
and its log instead of being swallowed. Run as a user runs it: a subprocess whose stdout is a pipe.

The run is the main job on real clips (../shared/data/pocus: 29 clips of 23 patients, ingest options
on the command line, the K-fold protocol of the tiny profile) when they are present, else on the
built-in phantom."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: the issue's bound on `make demo`'s whole output
MAX_LINES = 80
#: tiny settings on one training fraction (at 0.5 the tiny phantom has too few patients per class for the audit)
RUN = ("--profile", "tiny", "--fractions", "1.0")
POCUS = Path(os.environ.get("LUSYNTH_POCUS_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pocus"))
#: the real clips with the ingest options a user gives them (a labels CSV, its path column, the positive class)
SOURCE = ((str(POCUS / "clips.csv"), "--path-column", "file", "--positive-class", "abnormal")
          if (POCUS / "clips.csv").is_file() else ())
#: a task's line: kfp's task name (numbered in a loop), its loop item when it has one, status, seconds
_TASK_LINE = re.compile(r"^(\S+)(?: [^ ]+)*\s+(ok|FAILED|stopped)\s+\d+\.\d s\b")


def _grid_tasks(profile: str, overrides: dict) -> int:
    """Task lines a run prints that grow with the grid: per GAN train-gan, generate, audit; per cell train-classifier."""
    from lusynth.experiment import plan_classifiers, plan_gans
    from lusynth.params import stage_params

    grid = stage_params("experiment", profile, overrides)
    return 3 * len(plan_gans(["consolidation", "no_consolidation"], grid.fractions, grid)) + len(plan_classifiers(grid))


def _lusynth(*args: str, tmp: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", LUSYNTH_STAGE_CACHE=str(tmp / "stage-cache"),
               OMP_NUM_THREADS="1", **(extra_env or {}))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([str(Path(sys.executable).parent / "lusynth"), *args], capture_output=True, text=True, env=env, timeout=1800)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("run-output")
    res = _lusynth("run", *SOURCE, *RUN, "--out", str(tmp / "run"), tmp=tmp)
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
    print(f"lusynth run {' '.join((*SOURCE, *RUN))}: {len(lines)} lines ({len(tasks)} task lines); the demo's grid: {demo} lines")
    assert len(lines) <= MAX_LINES and demo <= MAX_LINES, text


def test_the_logs_hold_the_kfp_executor_output(tiny_run) -> None:
    out, res = tiny_run
    logs = out / "logs"
    gan_log = (logs / "train-gan.log").read_text()
    # kfp.local's own lines and the task subprocess's output (the component's executor) are in the task's log
    assert "Executing task 'train-gan'" in gan_log and "finished with status SUCCESS" in gan_log
    assert "[KFP Executor" in gan_log and "Got executor_input" in gan_log
    from lusynth.experiment import plan_classifiers, plan_gans
    from lusynth.params import stage_params

    grid = stage_params("experiment", "tiny", {"fractions": [1.0]})
    n_gans, n_cells = len(plan_gans(["a", "b"], grid.fractions, grid)), len(plan_classifiers(grid))
    assert len(list(logs.glob("train-gan*.log"))) == n_gans and len(list(logs.glob("train-classifier*.log"))) == n_cells
    assert "Running pipeline" in (logs / "pipeline.log").read_text()


@pytest.mark.pocus
@pytest.mark.skipif(not SOURCE, reason="../shared/data/pocus not present")
def test_the_main_job_answers_on_real_clips(tiny_run) -> None:
    """Issue 12, item 1: real data through the main job, every patient tested once (K-fold), verdicts."""
    out, res = tiny_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (report_json,) = (out / "kfp").glob("*/evaluate/results/report.json")  # the evaluate task's output (MLflow holds a copy)
    report = json.loads(report_json.read_text())
    clips = list(csv.DictReader((POCUS / "clips.csv").open()))
    patients = {c["patient_id"] for c in clips}
    assert report["protocol"]["folds"] == 2 and report["protocol"]["every_patient_tested"], report["protocol"]
    assert report["protocol"]["n_patients_tested"] == report["protocol"]["n_patients_total"] == len(patients)
    by_class = {lab: len({c["patient_id"] for c in clips if c["label"] == lab}) for lab in ("abnormal", "normal")}
    assert report["n_patients"] == {"positive": by_class["abnormal"], "negative": by_class["normal"]}, report["n_patients"]
    verdicts = {q["question"]: q["verdict"] for q in report["questions"]}
    assert set(verdicts) == {"a", "b"} and set(verdicts.values()) <= {"superior", "non-inferior", "inferior", "inconclusive"}, verdicts


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


#: a fault injected into every process of a run (PYTHONPATH): generate's near-copy filter rejects every
#: frame of one GAN (class, outer split), as it does for a GAN that only copies its training patients
_REJECT_ALL = '''
import os
_target = os.environ.get("LUSYNTH_TEST_FILTER_REJECTS")
if _target:
    import numpy as _np
    from lusynth.gan import generate as _generate
    from lusynth.gan.run import GanRun as _GanRun
    from lusynth.metrics import nearcopy as _nearcopy
    _label, _fold = _target.split(":")
    _now = {}
    _load, _mask = _generate.load_generator, _nearcopy.NearCopyFilter.mask

    def _tracking_load(gan_dir, which="chosen"):
        key = _GanRun.load(gan_dir).key
        _now["hit"] = (key.label, key.fold) == (_label, int(_fold))
        return _load(gan_dir, which)

    def _reject(self, frames):
        copies, dcr = _mask(self, frames)
        return (_np.ones_like(copies) if _now.get("hit") else copies), dcr

    _generate.load_generator = _tracking_load
    _nearcopy.NearCopyFilter.mask = _reject
'''


def test_a_gan_whose_frames_the_filter_rejects_is_withheld_and_the_run_still_answers(tmp_path: Path) -> None:
    """One GAN of the grid (the positive class, outer split 0) has every frame rejected by generate's
    near-copy filter. Before, its generate task failed and the run stopped without a report. Now:
    the run exits 0, the class is withheld, the two synthetic cells of that split are not trained,
    the report and the printed results name them, (a) is estimated from the other split and says
    so, the privacy gate fails and export still registers the rest."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_REJECT_ALL)
    positive = "abnormal" if SOURCE else "consolidation"
    res = _lusynth("run", *SOURCE, *RUN, "--out", str(tmp_path / "run"), tmp=tmp_path,
                   extra_env={"PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p),
                              "LUSYNTH_TEST_FILTER_REJECTS": f"{positive}:0"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (report_json,) = (tmp_path / "run" / "kfp").glob("*/evaluate/results/report.json")
    report = json.loads(report_json.read_text())
    assert [(w["label"], w["fold"], w["fraction"]) for w in report["withheld"]] == [(positive, 0, 1.0)], report["withheld"]
    assert sorted((c["arm"], c["fold"]) for c in report["skipped_classifiers"]) == [("real+synthetic", 0), ("synthetic", 0)]
    assert {(c["arm"], c["fold"]) for c in report["classifiers"]} >= {("real", 0), ("real", 1), ("real+synthetic", 1)}
    qa = next(q for q in report["questions"] if q["question"] == "a")
    assert qa["n_splits"] == 1 and any(n.startswith("from 1 of 2 splits") for n in qa["notes"]), qa
    assert report["privacy_gate"]["passed"] is False
    assert "### Withheld generators and skipped classifiers" in res.stdout and "not trained" in res.stdout, res.stdout
    assert "Traceback" not in res.stdout + res.stderr
