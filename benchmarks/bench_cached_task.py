"""How long a task served from the stage cache takes, per stage, in a fresh interpreter.

On a rerun of ``lusynth run`` (kfp.local) or ``dvc repro`` every task is a new process: it resolves its
parameters, keys its inputs, finds its output in the stage cache and restores it. That is cheap work;
what it costs is the imports. This script builds one tiny chain with the stage cache on (ingest, a
GAN per class, generate, an audit per class, a real and a synthetic classifier, evaluate,
export without the registry), then times the same :func:`lusynth.stages.run_stage` call for each
stage again, ``--repeats`` times (the median is reported), each in a fresh interpreter
(``python -c``: the whole process, start to exit), and records whether it was a cache hit and which of torch, scikit-learn, scipy and
mlflow it loaded. Point ``--src`` at another checkout's ``src`` to time that code on the same
machine (the two runs side by side are the comparison; absolute seconds depend on the load)::

    .venv/bin/python benchmarks/bench_cached_task.py
    git worktree add /tmp/base HEAD~1 && .venv/bin/python benchmarks/bench_cached_task.py --src /tmp/base/src --out /tmp/base.json

Writes ``benchmarks/results/cached_task.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GAN = {"fraction": 1.0, "gan_seed": 0, "fold": 0}
LABELS = ("consolidation", "no_consolidation")

#: stage -> the run_stage call (Python source; ``d`` is the work directory, ``o`` the output)
CALLS = {
    "ingest": "run_stage('ingest', o, profile='tiny')",
    "train_gan": f"run_stage('train_gan', o, inputs={{'frames': d + '/frames'}}, key={{'label': '{LABELS[0]}', **{GAN!r}}}, profile='tiny')",
    "generate": "run_stage('generate', o, inputs={'frames': d + '/frames', 'gans': [d + '/gan-0', d + '/gan-1']}, profile='tiny')",
    "audit": "run_stage('audit', o, inputs={'frames': d + '/frames', 'synthetic': d + '/synthetic', 'gans': [d + '/gan-0', d + '/gan-1']}, "
             "profile='tiny')",
    "train_classifier": "run_stage('train_classifier', o, inputs={'frames': d + '/frames', 'synthetic': [d + '/synthetic']}, "
                        f"key={{'arm': 'synthetic', 'seed': 0, **{GAN!r}}}, profile='tiny')",
    "evaluate": "run_stage('evaluate', o, inputs={'frames': d + '/frames', 'classifiers': [d + '/clf-real', d + '/clf-synthetic'], "
                "'gans': [d + '/gan-0', d + '/gan-1'], 'synthetic': [d + '/synthetic']}, profile='tiny')",
    "export_register": "run_stage('export_register', o, inputs={'classifiers': [d + '/clf-real', d + '/clf-synthetic'], "
                       "'gans': [d + '/gan-0', d + '/gan-1'], 'evaluation': d + '/evaluation'}, options={'register': False}, profile='tiny')",
}
#: the chain that fills the cache: output directory -> call
SETUP = [
    ("frames", CALLS["ingest"]),
    ("gan-0", CALLS["train_gan"]),
    ("gan-1", CALLS["train_gan"].replace(f"'{LABELS[0]}'", f"'{LABELS[1]}'")),
    ("synthetic", CALLS["generate"]),
    ("audit", CALLS["audit"]),
    ("clf-real", CALLS["train_classifier"].replace("'arm': 'synthetic'", "'arm': 'real'")),
    ("clf-synthetic", CALLS["train_classifier"]),
    ("evaluation", CALLS["evaluate"]),
    ("onnx", CALLS["export_register"]),
]
HEAVY = ("torch", "sklearn", "scipy", "mlflow")


def _python(src: Path, body: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = f"import sys\nsys.path.insert(0, {str(src)!r})\nfrom lusynth.stages import run_stage\n{body}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ directory whose lusynth is timed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cached_task.json")
    args = ap.parse_args(argv)
    threads = str(max(1, len(os.sched_getaffinity(0))))
    with tempfile.TemporaryDirectory(prefix="lusynth-bench-cached-") as tmp:
        env = {**os.environ, "LUSYNTH_STAGE_CACHE": f"{tmp}/cache", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
               "OMP_NUM_THREADS": threads, "PYTHONPATH": str(args.src)}
        for out, call in SETUP:
            res = _python(args.src, f"d, o = {tmp!r}, {tmp + '/' + out!r}\n{call}", env)
            if res.returncode:
                print(res.stderr[-3000:], file=sys.stderr)
                return 1
            print(f"built {out}", file=sys.stderr)
        rows = {}
        for stage, call in CALLS.items():
            seconds, hits, loaded = [], [], set()
            for i in range(args.repeats):
                body = (f"d, o = {tmp!r}, {f'{tmp}/again-{stage}-{i}'!r}\nhit = {call}.cached\n"
                        f"print(hit, sorted(m for m in {HEAVY!r} if m in sys.modules))")
                t = _timed(args.src, body, env)
                hits.append(t[1])
                loaded |= set(t[2])
                seconds.append(t[0])
            rows[stage] = {"median_s": round(statistics.median(seconds), 3), "seconds": [round(s, 3) for s in seconds],
                           "cache_hit": all(hits), "loaded": sorted(loaded)}
            print(f"{stage:17s} {rows[stage]['median_s']:6.2f} s  hit={rows[stage]['cache_hit']}  loads {', '.join(sorted(loaded)) or '-'}")
    result = {"src": str(args.src), "repeats": args.repeats, "threads": int(threads), "python": sys.version.split()[0],
              "stages": rows, "total_median_s": round(sum(r["median_s"] for r in rows.values()), 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['total_median_s']} s; written: {args.out}")
    return 0


def _timed(src: Path, body: str, env: dict[str, str]) -> tuple[float, bool, list[str]]:
    """(wall seconds of the whole interpreter, cache hit, heavy modules loaded)."""
    import time

    t = time.perf_counter()
    res = _python(src, body, env)
    elapsed = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    hit, _, mods = res.stdout.strip().splitlines()[-1].partition(" ")
    return elapsed, hit == "True", json.loads(mods.replace("'", '"'))


if __name__ == "__main__":
    sys.exit(main())
