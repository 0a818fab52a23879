"""The privacy audit's operating characteristics, simulated: does it tell a leaking generator
from a safe one, at the demo's size and larger? Writes benchmarks/results/audit.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_audit.py            # ~10 min on 1 core
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_audit.py --reps 20  # a quick look

Cohorts and generators are :mod:`lusynth.privacy.simulate` (feature vectors with patient random
effects; split 0.6/0.2/0.2 by patient; 16 frames per patient; 200 synthetic frames per class, the
demo's ``generate.n_per_class``); the audit is :func:`lusynth.privacy.run_audit` with the demo's
``audit`` section (pixel space). Two outputs:

- ``table``: at each patient count, the rate of each decision for the independent generator
  (its FAIL rate is the false-FAIL rate), the noisy-copy generator and the generator that copies
  two training patients into 30 % of its frames, with Clopper-Pearson 95 % intervals;
- ``power``: the detection (FAIL) rate of the two-patient copier against the patient count and
  the share of copied frames.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lusynth.privacy import simulate as sim
from lusynth.privacy.core import run_audit
from lusynth.privacy.gate import FAIL, INSUFFICIENT, PASS
from lusynth.privacy.params import AuditParams
from lusynth.privacy.stats import clopper_pearson

OUT = Path(__file__).resolve().parent / "results" / "audit.json"


def _decide(gen: str, seed: int, patients: int, params: AuditParams, **kw: Any) -> str:
    rng = np.random.default_rng(seed)
    co = sim.cohort(rng, patients=patients)
    x, y = getattr(sim, gen)(rng, co, 200, **kw)
    return str(run_audit({"pixels": co.features}, co.patients, co.labels, co.roles, {"pixels": x}, y, params=params)["decision"])


def _rates(decisions: list[str]) -> dict[str, Any]:
    n = len(decisions)
    out: dict[str, Any] = {"n": n}
    for d in (FAIL, PASS, INSUFFICIENT):
        k = decisions.count(d)
        lo, hi = clopper_pearson(k, n)
        out[d] = {"rate": k / n, "lo": lo, "hi": hi}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200, help="draws per table cell (power cells use a quarter)")
    ap.add_argument("--patients", type=int, nargs="+", default=[24, 48, 96, 192])
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    params = replace(AuditParams(features=("pixels",)), n_permutations=500, n_bootstrap=500)
    t0 = time.perf_counter()
    generators = {"independent": {}, "leaky_noise": {}, "leaky_patients": {"share": 0.3, "copied_patients": 2}}
    table = []
    for n in args.patients:
        for gen, kw in generators.items():
            decisions = [_decide(gen, 10_000 * n + s, n, params, **kw) for s in range(args.reps)]
            row = {"generator": gen, "patients": n, **kw, **_rates(decisions)}
            table.append(row)
            print(json.dumps({k: row[k] for k in ("generator", "patients")} | {"fail": row[FAIL]["rate"], "pass": row[PASS]["rate"]}),
                  flush=True)
    power = []
    reps = max(10, args.reps // 4)
    for n in args.patients:
        for share in args.shares:
            decisions = [_decide("leaky_patients", 20_000 * n + s, n, params, share=share, copied_patients=2) for s in range(reps)]
            power.append({"patients": n, "share": share, "detection": _rates(decisions)[FAIL]})
    result = {
        "what": "privacy audit decisions on simulated generators (lusynth.privacy.simulate), pixel space",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_audit.py --reps " + str(args.reps),
        "audit": {k: v for k, v in vars(params).items() if k != "CHOICES"},
        "synthetic_per_class": 200, "frames_per_patient": 16, "split": [0.6, 0.2, 0.2],
        "table": table, "power": power, "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=list) + "\n")
    print(f"wrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
