"""Run the benchmarks (``benchmarks/bench_*.py``) one after another, each in its own interpreter.

    .venv/bin/python benchmarks/run_all.py                       # all of them, in name order (make bench)
    .venv/bin/python benchmarks/run_all.py --only gan --only ingest
    .venv/bin/python benchmarks/run_all.py --list                # their names; runs nothing

Each script writes its own results to benchmarks/results/. This runner prints which scripts ran
and their exit codes, and exits 1 when any of them failed (after running the rest).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "bench_"


def discover(directory: Path = HERE) -> dict[str, Path]:
    """The benchmark scripts in ``directory`` by name (``bench_gan.py`` is ``gan``), in name order."""
    return {p.stem[len(PREFIX) :]: p for p in sorted(directory.glob(f"{PREFIX}*.py"))}


def select(scripts: dict[str, Path], only: Sequence[str]) -> dict[str, Path]:
    """The scripts named in ``only`` (``gan``, ``bench_gan`` or ``bench_gan.py``; empty: all of them)."""
    if not only:
        return scripts
    names = [n.removesuffix(".py").removeprefix(PREFIX) for n in only]
    unknown = [n for n in names if n not in scripts]
    if unknown:
        raise KeyError(f"--only {', '.join(unknown)}: no such benchmark; choose from {', '.join(scripts)} (see --list)")
    return {n: scripts[n] for n in scripts if n in names}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; 0 when all of them exited 0, else 1 (a bad --only exits 2, with usage)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this benchmark (repeatable), e.g. gan")
    ap.add_argument("--list", action="store_true", help="print the benchmarks' names and scripts, run nothing")
    args = ap.parse_args(argv)
    try:
        chosen = select(discover(), args.only)
    except KeyError as exc:
        ap.error(exc.args[0])
    if args.list:
        for name, path in chosen.items():
            print(f"{name:<14} {path.relative_to(HERE.parent)}")
        return 0
    codes: dict[str, int] = {}
    for name, path in chosen.items():
        print(f"== {name}: {path.relative_to(HERE.parent)}", flush=True)
        t0 = time.monotonic()
        codes[name] = subprocess.run([sys.executable, str(path)], cwd=HERE.parent).returncode
        print(f"== {name}: exit {codes[name]} after {time.monotonic() - t0:.0f} s", flush=True)
    print("\nbenchmark      exit")
    for name, code in codes.items():
        print(f"{name:<14} {code}{'' if code == 0 else '  FAILED'}")
    return 1 if any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
