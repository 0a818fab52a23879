"""``make bench``'s runner: it finds every benchmark script (only --list here; the benchmarks are slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run_all(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), *args], capture_output=True, text=True, timeout=60)


def test_list_names_every_benchmark_script_and_runs_none() -> None:
    res = _run_all("--list")
    assert res.returncode == 0, res.stderr
    names = [line.split()[0] for line in res.stdout.splitlines()]
    assert names == sorted(p.stem.removeprefix("bench_") for p in BENCHMARKS.glob("bench_*.py"))
    assert "gan" in names and "exit" not in res.stdout


def test_list_with_only_selects_and_an_unknown_name_is_an_error() -> None:
    res = _run_all("--list", "--only", "bench_gan.py", "--only", "ingest")
    assert res.returncode == 0 and [line.split()[0] for line in res.stdout.splitlines()] == ["gan", "ingest"]
    bad = _run_all("--list", "--only", "no-such-bench")
    assert bad.returncode == 2 and "no-such-bench: no such benchmark" in bad.stderr and "gan" in bad.stderr
