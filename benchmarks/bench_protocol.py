"""Wall time of the whole experiment (``lusynth run``: the KFP pipeline under kfp.local) for the
protocol's budgets (issue 12): the demo on 2 cores in at most 8 minutes, and a 60-patient,
~3000-frame 64x64 dataset with K=5 folds, 2 GAN seeds and 2 classifier seeds in at most 90 minutes.
Not a test: prints one JSON line per scenario and writes ``benchmarks/results/protocol.json``.

    .venv/bin/python benchmarks/bench_protocol.py                   # tiny, demo, large (the whole K=5 run)
    .venv/bin/python benchmarks/bench_protocol.py --only demo tiny
    .venv/bin/python benchmarks/bench_protocol.py --quick           # smoke check: every scenario's shape at tiny budgets

Scenarios:

- ``tiny``  the test profile (every stage real, seconds each): the machine's speed today, so a
  demo time measured while other jobs share the cores can be scaled (``load_ratio``);
- ``demo``  ``lusynth run --out DIR`` with the defaults (phantom, demo profile): what ``make demo`` runs;
- ``large`` a 60-patient phantom (2 clips x 25 frames = 3000 frames, 64x64), outer K=5 fold
  cross-validation, 2 GAN seeds x 2 classifier seeds, every arm, both fractions: the whole
  protocol, every fold (5 x 8 GANs, 5 x 24 classifiers).

``--quick`` is a smoke check of the harness, not a measurement: each scenario keeps its grid's
shape (folds, GAN and classifier seeds) but runs at the tiny profile's training budgets on a
12-patient phantom with K=2 and one fraction, and nothing is written to ``protocol.json``.

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
        "ingest": {"video_frames": 25},
        "experiment": {"gan_seeds": [0, 1], "seeds": [0, 1], "folds": K},
    }),
}


def quick(name: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The scenario at the tiny profile's budgets: 12 patients, K=2, one fraction, its seeds kept."""
    _, overrides = SCENARIOS[name]
    exp = dict(overrides.get("experiment", {}))
    exp.update(folds=2, fractions=[1.0])
    return "tiny", {"phantom": {"patients": 12, "clips_per_patient": 2, "frames_per_clip": 4}, "experiment": exp}


def run(name: str, *, smoke: bool = False) -> dict[str, Any]:
    """Run one scenario end to end in a fresh folder with a fresh stage cache; its wall time and grid."""
    from lusynth.experiment import plan_classifiers, plan_gans
    from lusynth.params import stage_params
    from lusynth_pipelines.local import run_local

    profile, overrides = quick(name) if smoke else SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix=f"bench-protocol-{name}-") as tmp:
        os.environ["LUSYNTH_STAGE_CACHE"] = str(Path(tmp) / "stage-cache")
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        result = run_local(Path(tmp) / "run", profile=profile, overrides=overrides)
        seconds = time.perf_counter() - t0
        report = json.loads((result.results / "report.json").read_text())
    grid = stage_params("experiment", profile, overrides.get("experiment"))
    protocol = report.get("protocol", {})
    out: dict[str, Any] = {
        "scenario": name, "profile": profile, "overrides": overrides, "seconds": round(seconds, 1), "smoke": smoke,
        "folds": protocol.get("folds"), "repeats": protocol.get("repeats"),
        "classifiers": len(plan_classifiers(grid)), "gans": len(plan_gans(["a", "b"], grid.fractions, grid)),
        "patients_tested": protocol.get("n_patients_tested"), "patients_total": protocol.get("n_patients_total"),
        "cpus": os.cpu_count(), "loadavg_start": round(load0, 2), "loadavg_end": round(os.getloadavg()[0], 2),
        "verdicts": [(q.get("question"), q.get("verdict")) for q in report.get("questions", [])],
        "questions": [{k: q.get(k) for k in ("question", "verdict", "estimate", "ci", "min_detectable_difference")}
                      for q in report.get("questions", [])],
    }
    if smoke and not (protocol.get("folds") == 2 and protocol.get("every_patient_tested")):
        raise SystemExit(f"{name}: the smoke run's report does not show a complete 2-fold protocol: {protocol}")
    return out


def main() -> None:
    """Run the chosen scenarios, print a JSON line each, merge them into benchmarks/results/protocol.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS), default=list(SCENARIOS))
    ap.add_argument("--quick", action="store_true", help="smoke check at tiny budgets (K=2, 12 patients); writes no results")
    args = ap.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in args.only:
        r = run(name, smoke=args.quick)
        print(json.dumps(r), flush=True)
        if not args.quick:
            results[name] = r
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
