"""Wall time of the whole experiment (``lusynth run``: the KFP pipeline under kfp.local) for the
protocol's budgets (issue 12): the demo on 2 cores in at most 8 minutes, and a 60-patient,
~3000-frame 64x64 dataset with K=5 folds, 2 GAN seeds and 2 classifier seeds in at most 90 minutes.
Not a test: prints one JSON line per scenario and writes ``benchmarks/results/protocol.json``.

    .venv/bin/python benchmarks/bench_protocol.py                   # tiny, demo, and one fold of the large run
    .venv/bin/python benchmarks/bench_protocol.py --only demo tiny

Scenarios:

- ``tiny``  the test profile (every stage real, seconds each): the machine's speed today, so a
  demo time measured while other jobs share the cores can be scaled (``load_ratio``);
- ``demo``  ``lusynth run --out DIR`` with the defaults (phantom, demo profile): what ``make demo`` runs;
- ``large`` a 60-patient phantom (2 clips x 25 frames = 3000 frames, 64x64), 2 GAN seeds x 2
  classifier seeds, every arm, both fractions. Outer K-fold cross-validation is not wired into the
  pipeline yet, so this runs ONE fold's worth of work (train+val = 80 % of the patients, as in
  K=5) and reports ``estimated_k5_seconds`` = K x that time (the folds are independent runs of
  the same size). Say so wherever the figure is quoted.

Each run gets a fresh output folder and stage cache, so nothing is restored from an earlier run.
The load average at the start and end is recorded: on a shared machine, compare runs only at a
similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "protocol.json"
K = 5

#: scenario -> (profile, overrides)
SCENARIOS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "tiny": ("tiny", {"experiment": {"fractions": [1.0]}}),
    "demo": ("demo", {}),
    "large": ("demo", {
        "phantom": {"patients": 60, "clips_per_patient": 2, "frames_per_clip": 25},
        "ingest": {"video_frames": 25, "split_fractions": [0.6, 0.2, 0.2]},
        "experiment": {"gan_seeds": [0, 1], "seeds": [0, 1]},
    }),
}


def run(name: str) -> dict[str, Any]:
    """Run one scenario end to end in a fresh folder with a fresh stage cache; its wall time and grid."""
    from lusynth.experiment import plan_classifiers
    from lusynth.params import stage_params
    from lusynth_pipelines.local import run_local

    profile, overrides = SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix=f"bench-protocol-{name}-") as tmp:
        os.environ["LUSYNTH_STAGE_CACHE"] = str(Path(tmp) / "stage-cache")
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        result = run_local(Path(tmp) / "run", profile=profile, overrides=overrides)
        seconds = time.perf_counter() - t0
        report = json.loads((result.results / "report.json").read_text())
    grid = stage_params("experiment", profile, overrides.get("experiment"))
    out: dict[str, Any] = {
        "scenario": name, "profile": profile, "overrides": overrides, "seconds": round(seconds, 1),
        "classifiers": len(plan_classifiers(grid)), "gans_per_class": len(grid.fractions) * len(grid.gan_seeds),
        "holdout_patients": report["config"].get("n_holdout_patients"),
        "cpus": os.cpu_count(), "loadavg_start": round(load0, 2), "loadavg_end": round(os.getloadavg()[0], 2),
        "headline": report.get("headline", {}).get("summary", []),
    }
    if name == "large":
        out["estimated_k5_seconds"] = round(K * seconds, 1)
        out["note"] = f"one fold measured; K={K} estimated as {K} x one fold (K-fold not yet wired into the pipeline)"
    return out


def main() -> None:
    """Run the chosen scenarios, print a JSON line each, merge them into benchmarks/results/protocol.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS), default=list(SCENARIOS))
    args = ap.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in args.only:
        r = run(name)
        print(json.dumps(r), flush=True)
        results[name] = r
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
