"""How many frames of a *real, unseen* patient does the near-copy rule flag? The rule's null rate on real stores.

A generator that draws fresh patients from the training population should have its frames flagged
about as often as a real patient it never saw. This script makes each training patient of every
(fold, class, fraction) play that patient: the filter is fitted on the *other* training patients
(and the fold's validation patients, as ``generate`` fits it), and the share of the held-out
patient's frames it flags is recorded. Per reference rule (``near_copy.reference``: ``pooled``, the
default, and ``validation``, the rule before 2026-12-07) it reports the mean over patients per cell
and over cells, and how many patients were flagged whole. The fitted set is one patient smaller
than a generator's, so this errs towards flagging, as the pooled rule itself does.

What a reader learns: where the null rate is well above ``gan.max_memorisation_rate`` (0.05), a
generator faithful to the training patients would be ineligible at checkpoint selection and lose
frames in ``generate``'s filter, however good it is. Writes ``benchmarks/results/nearcopy_null.json``.
Not a test.

    .venv/bin/python benchmarks/bench_nearcopy_null.py     # the phantom and ../shared/data/pocus, ingested as the demo pipeline does
    .venv/bin/python benchmarks/bench_nearcopy_null.py --store pocus=/tmp/pocus
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_precision_quality import _write  # noqa: E402
from lusynth.data.framestore import FrameStore, open_store  # noqa: E402
from lusynth.metrics.nearcopy import NearCopyPolicy  # noqa: E402

RULES = ("pooled", "validation")


def held_out_rates(train: np.ndarray, train_patients: np.ndarray, reference: np.ndarray, policy: NearCopyPolicy) -> dict[str, float]:
    """Per training patient: the share of its frames the filter fitted without it (on the other training
    patients and ``reference``) flags; patients whose removal leaves fewer than two are skipped."""
    patients = np.asarray(train_patients).astype(str)
    out = {}
    for p in np.unique(patients):
        rest = patients != p
        if len(np.unique(patients[rest])) < 2:
            continue
        filt = policy.fit(train[rest], reference, patients[rest])
        out[str(p)] = float(filt.mask(train[~rest])[0].mean())
    return out


def store_rates(store: FrameStore, rule: str) -> list[dict[str, Any]]:
    """Every (fold, class, training fraction) cell of ``store``: each held-out patient's flag rate under ``rule``."""
    policy = NearCopyPolicy(reference=rule)
    pid = store.manifest["patient_id"].astype(str).to_numpy()
    fractions = sorted({float(f) for f in store.header.get("train_fractions") or [1.0]})
    cells = []
    for fold in range(store.n_splits):
        for label in store.classes:
            val = store.view(fold, "val", label=label)
            for frac in fractions:
                tr = store.view(fold, "train", label=label, fraction=frac)
                rates = held_out_rates(np.asarray(store.frames[tr]), pid[tr], np.asarray(store.frames[val]), policy)
                if rates:
                    cells.append({"fold": fold, "label": label, "fraction": frac, "n_train_patients": len(set(pid[tr])),
                                  "n_val_patients": len(set(pid[val])), "per_patient": rates,
                                  "mean": float(np.mean(list(rates.values()))),
                                  "whole_patients_flagged": int(sum(r == 1.0 for r in rates.values()))})
    return cells


def profile_stores(tmp: Path, profile: str) -> list[str]:
    """The phantom and, where ``../shared/data/pocus`` exists, the real clips, ingested as ``lusynth run
    --profile PROFILE`` ingests them (its folds, fractions and phantom): the stores the pipeline's filter sees."""
    from lusynth.runtime import RunContext
    from lusynth.stages import run_stage

    ctx = RunContext(track=False, cache=False, progress=False)
    stores = [f"phantom={run_stage('ingest', tmp / 'phantom', profile=profile, ctx=ctx).out}"]
    pocus = HERE.parent.parent / "shared" / "data" / "pocus" / "clips.csv"
    if pocus.is_file():
        out = run_stage("ingest", tmp / "pocus", profile=profile, options={"source": str(pocus)}, ctx=ctx,
                        overrides={"ingest": {"path_column": "file", "positive_class": "abnormal"}}).out
        stores.append(f"pocus={out}")
    return stores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", action="append", default=[],
                    help="NAME=PATH of a real frame store (repeatable); default: the phantom and ../shared/data/pocus, ingested here")
    ap.add_argument("--profile", default="demo", help="without --store: ingest as this profile's pipeline does (default demo)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "nearcopy_null.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stores = a.store or profile_stores(Path(tmp), a.profile)
        results: dict[str, Any] = {"command": " ".join(sys.argv), "stores": {}}
        for spec in stores:
            name, _, path = spec.partition("=")
            store = open_store(path)
            per_rule = {}
            for rule in RULES:
                cells = store_rates(store, rule)
                per_rule[rule] = {"cells": cells, "mean_over_cells": float(np.mean([c["mean"] for c in cells])) if cells else None,
                                  "patients": sum(len(c["per_patient"]) for c in cells),
                                  "whole_patients_flagged": sum(c["whole_patients_flagged"] for c in cells)}
                print(f"{name} {rule:10s} null flag rate over {len(cells)} cells: {per_rule[rule]['mean_over_cells']:.3f} "
                      f"({per_rule[rule]['whole_patients_flagged']} of {per_rule[rule]['patients']} held-out patients flagged whole)")
            results["stores"][name] = {"path": path, "digest": store.digest, **per_rule}
            _write(a.out, results)


if __name__ == "__main__":
    main()
