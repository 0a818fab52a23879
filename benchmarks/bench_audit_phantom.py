"""The privacy audit on real pipeline frames with known answers: a perfect generator and a copier.

``bench_audit.py`` measures the audit's error rates on simulated feature vectors. This one runs the
real ``lusynth audit`` (:func:`lusynth.privacy.run.audit`, the demo's ``audit`` section) on frames
of the phantom, ingested as the pipeline ingests it (``--patients`` patients, one split by patient,
0.6/0.2/0.2), against two synthetic image folders per (seed, training fraction):

* ``perfect``: per class, ``--n-per-class`` frames, one from each of as many *new* phantom patients
  (``bench_generators.oracle_frames``: the same phantom with more patients, ingested the same way).
  No frame or patient of the store is in it, so the audit must not FAIL it: its FAIL rate is the
  audit's false-FAIL rate on real frames;
* ``copier``: per class, frames drawn from the audited members (the training patients at that
  fraction). Everything it releases is a training frame, so the audit must FAIL it (its power).

``members`` are the store's training patients at the fraction (``train@F``), non-members the test
patients, calibration the validation patients, as in the pipeline's audit stage. A folder has no
discriminator, so the discriminator attack is absent (as for any outside generator). Writes
``benchmarks/results/audit_phantom.json``. Not a test::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_audit_phantom.py --patients 64 --seeds 0 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench_generators import fresh_phantom, oracle_frames, phantom_store
from lusynth.data.framestore import FrameStore, open_store
from lusynth.privacy.gate import FAIL, INSUFFICIENT, PASS
from lusynth.privacy.params import AuditParams
from lusynth.privacy.run import audit
from lusynth.privacy.stats import clopper_pearson

OUT = Path(__file__).resolve().parent / "results" / "audit_phantom.json"
GENERATORS = ("perfect", "copier")


def member_frames(store: FrameStore, label: str, fraction: float) -> np.ndarray:
    """The frames of the class's training patients at ``fraction`` (the audit's members for ``train@F``)."""
    return np.asarray(store.frames[store.view(0, "train", label=label, fraction=fraction)])  # as the audit's own roles


def write_folder(root: Path, frames: dict[str, np.ndarray]) -> Path:
    """A folder of PNGs, one subfolder per class (what ``lusynth audit --synthetic`` reads)."""
    for label, fs in frames.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(fs):
            Image.fromarray(f).save(root / label / f"{i:04d}.png")
    return root


def synthetic(store: FrameStore, fresh: dict[str, tuple[np.ndarray, np.ndarray]], kind: str, fraction: float, n: int,
              seed: int) -> dict[str, np.ndarray]:
    """One generator's frames per class: ``perfect`` (new patients, one frame each) or ``copier`` (members' frames)."""
    rng = np.random.default_rng(seed)
    out = {}
    for label in store.classes:
        if kind == "perfect":
            out[label] = oracle_frames(*fresh[label], n, seed)
        else:
            members = member_frames(store, label, fraction)
            out[label] = members[rng.choice(len(members), n, replace=len(members) < n)]
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (generator, fraction): each decision's rate with a Clopper-Pearson 95 % interval, and the checks' medians."""
    table: dict[str, Any] = {}
    for gen in GENERATORS:
        for frac in sorted({r["fraction"] for r in runs}):
            rs = [r for r in runs if r["generator"] == gen and r["fraction"] == frac]
            if not rs:
                continue
            cell: dict[str, Any] = {"n": len(rs)}
            for d in (FAIL, PASS, INSUFFICIENT):
                k = sum(r["decision"] == d for r in rs)
                lo, hi = clopper_pearson(k, len(rs))
                cell[d] = {"rate": k / len(rs), "lo": lo, "hi": hi}
            for check in rs[0]["checks"]:
                cell[f"median_{check}"] = float(np.median([r["checks"][check] for r in rs]))
            table[f"{gen}@{frac:g}"] = cell
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=64, help="phantom patients (the demo phantom has 24)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--n-per-class", type=int, default=200, help="synthetic frames per class (the demo's generate.n_per_class)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-audit-phantom-") as tmp:
        t = Path(tmp)
        store = open_store(phantom_store(t / "store", a.patients))
        fresh = fresh_phantom(t / "fresh", store, a.patients + 2 * a.n_per_class + 8)
        for seed in a.seeds:
            for fraction in a.fractions:
                for gen in GENERATORS:
                    folder = write_folder(t / f"syn-{gen}-{seed}-{fraction:g}", synthetic(store, fresh, gen, fraction, a.n_per_class, seed))
                    res = audit(t / "store", folder, t / f"audit-{gen}-{seed}-{fraction:g}", trained_on=f"train@{fraction:g}",
                                params=AuditParams(seed=seed))
                    checks = {c["name"]: c["value"] for c in res.report["checks"]}
                    runs.append({"generator": gen, "seed": seed, "fraction": fraction, "decision": res.decision, "checks": checks,
                                 "reasons": res.report.get("reasons")})
                    print(f"seed {seed} fraction {fraction:g} {gen}: {res.decision.upper()} "
                          + ", ".join(f"{k} {v:.3f}" for k, v in checks.items()), flush=True)
                    a.out.parent.mkdir(parents=True, exist_ok=True)
                    a.out.write_text(json.dumps({"patients": a.patients, "n_per_class": a.n_per_class, "runs": runs,
                                                 "table": summarise(runs)}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
