"""Temporary space lies under the output folder and is never left behind (issue 15, item 7):
removed on exit, on an exception, on SIGTERM, and by the next run after a ``kill -9``; a folder
without lusynth's marker, or owned by a live process, is never removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lusynth.tempspace import MARKER, PREFIX, make_temp_dir, sweep, temp_dir

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from lusynth.tempspace import temp_dir
with temp_dir(sys.argv[1]) as d:
    (d / "payload").write_bytes(b"x" * 1000)
    print(d, flush=True)
    time.sleep(60)
"""


def _env(tmp_path: Path) -> dict[str, str]:
    tmpdir = tmp_path / "private-tmp"
    tmpdir.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def _hold(tmp_path: Path, parent: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(parent)], stdout=subprocess.PIPE, text=True, env=_env(tmp_path))
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_removed_on_exit_and_on_exception(tmp_path) -> None:
    with temp_dir(tmp_path) as d:
        assert d.parent == tmp_path and d.name.startswith(PREFIX) and (d / MARKER).is_file()
    assert not d.exists()
    with pytest.raises(RuntimeError), temp_dir(tmp_path) as d2:
        raise RuntimeError("boom")
    assert not d2.exists() and list(tmp_path.iterdir()) == []


def test_kill_9_leftover_is_swept_by_the_next_start(tmp_path) -> None:
    proc, held = _hold(tmp_path, tmp_path)
    assert (held / "payload").is_file()
    proc.kill()
    proc.wait()
    assert held.is_dir(), "kill -9 runs no cleanup"
    foreign = tmp_path / f"{PREFIX}not-ours"  # same name pattern, no marker: a user's folder
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    mine = make_temp_dir(tmp_path)  # a live owner: this process
    try:
        assert sweep(tmp_path) == []  # already swept by make_temp_dir
        assert not held.exists()
        assert (foreign / "thesis.tex").read_text() == "years of work"
        assert mine.is_dir()
    finally:
        import lusynth.tempspace as ts

        ts.discard(mine)


def test_other_host_and_reused_pid_are_judged_correctly(tmp_path) -> None:
    from lusynth.tempspace import owner

    other_host = tmp_path / f"{PREFIX}1-a"
    other_host.mkdir()
    (other_host / MARKER).write_text(json.dumps({**owner(), "host": "elsewhere", "pid": 999999}))
    reused = tmp_path / f"{PREFIX}2-b"
    reused.mkdir()
    (reused / MARKER).write_text(json.dumps({**owner(), "start": "1"}))  # our pid, another start time
    assert sweep(tmp_path) == [reused]
    assert other_host.is_dir()  # a shared volume: the other machine's run may be alive


def test_sigterm_removes_it(tmp_path) -> None:
    proc, held = _hold(tmp_path, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # still dies by the signal
    assert not held.exists()


def test_a_forked_child_killed_by_sigterm_keeps_its_parents_directory(tmp_path) -> None:
    """A DataLoader worker is a fork: it inherits the handler and must not remove the parent's output."""
    with temp_dir(tmp_path) as d:
        pid = os.fork()
        if pid == 0:  # the child: wait to be terminated
            time.sleep(30)
            os._exit(0)
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        assert d.is_dir() and (d / MARKER).is_file()


def test_killed_ingest_leaves_nothing_in_tmp_and_the_next_run_cleans_up(tmp_path) -> None:
    """A phantom ingest (it writes scratch files) killed mid-run, then run again: nothing in TMPDIR,
    no temporary folder beside the output."""
    env = _env(tmp_path)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-c", "import sys; from lusynth.cli import main; sys.exit(main())", "ingest", "--out", str(runs / "frames"), "--quiet", "--no-track",
           "--no-cache", "--patients", "12", "--frames-per-clip", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith((PREFIX, ".tmp-")) for p in runs.glob(".*")):
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(Path(env["TMPDIR"]).iterdir()) == [], "scratch went to TMPDIR"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["frames", "frames-report"]
    assert list(Path(env["TMPDIR"]).iterdir()) == []
