"""Per-patient fidelity of generator families, with intervals over the outer splits.

The evaluate stage measures each generator's frames by the leave-one-patient-out 1-NN accuracy in
the real classifier's embedding against its fold's test patients of its class, beside the same test
for the fold's inner validation patients (the real floor: new patients the GAN did not see either;
:func:`lusynth.metrics.fidelity.fidelity_with_floor`). One such reading is one cell: (outer split,
class, fraction, GAN seed, family). A cell is noisy (2-6 test patients, one seed), so a family is
judged on the cells together, and the question "is family X closer to real than the DCGAN?" on the
cells the two share.

The unit of replication is the outer split, as for the classifier questions
(:mod:`lusynth.stats.inference`): within a split every cell is measured in the same embedding (the
split's real classifier) against the same test patients, so its cells are not independent. Each
split's value is the mean over its cells (classes, GAN seeds) of the quantity -- the family's
accuracy, the family minus the floor in the same cell, or the family minus the reference family in
the same (class, GAN seed) -- and the splits are combined by :func:`~lusynth.stats.inference.combine`:
the Nadeau-Bengio corrected resampled t over splits, whose ``n_test/n_train`` term allows for the
folds sharing training patients (GANs of different folds saw mostly the same patients). With one
split there is no spread to build an interval from, and none is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lusynth.stats.inference import SplitValue, combine

QUANTITIES = ("synthetic", "minus_floor", "minus_reference", "fine_detail")


def _cell_values(audits: Sequence[Mapping[str, Any]]) -> dict[tuple[str, float], dict[tuple[int, str, int], dict[str, float]]]:
    """(family, fraction) -> (split, class, GAN seed) -> what the cell measured: ``synthetic`` and
    ``floor`` (per-patient 1-NN accuracies, with ``n_test`` patients) where the class had the patients
    for it, ``fine_detail`` (synthetic / real test frames' mean absolute Laplacian) where both were measured."""
    out: dict[tuple[str, float], dict[tuple[int, str, int], dict[str, float]]] = {}
    for a in audits:
        fp = a.get("fidelity_patient") or {}
        e = fp.get("embedding")
        f = a.get("fidelity") or {}
        values: dict[str, float] = {}
        if e:
            values |= {"synthetic": float(e["synthetic"]["nn1_accuracy"]), "floor": float(e["real_floor"]["nn1_accuracy"]),
                       "n_test": float(fp.get("n_test_patients") or 0)}
        if f.get("sharpness") is not None and f.get("sharpness_holdout"):
            values["fine_detail"] = float(f["sharpness"]) / float(f["sharpness_holdout"])
        if values:
            key = (str(a.get("generator") or "dcgan"), float(a["fraction"]))
            out.setdefault(key, {})[(int(a.get("fold") or 0), str(a["label"]), int(a.get("gan_seed") or 0))] = values
    return out


def _estimate(per_split: Mapping[int, list[float]], split_sizes: Mapping[int, tuple[int, int]], *, level: float,
              bounds: tuple[float, float]) -> dict[str, Any]:
    """Mean over splits of each split's mean, with the corrected t interval over splits (none from one split)."""
    splits = sorted(per_split)
    points = [float(np.mean(per_split[k])) for k in splits]
    n_cells = sum(len(v) for v in per_split.values())
    out: dict[str, Any] = {"estimate": float(np.mean(points)), "n_splits": len(splits), "n_cells": n_cells,
                           "per_split": [{"split": k, "estimate": p, "n_cells": len(per_split[k])} for k, p in zip(splits, points, strict=True)]}
    if len(splits) < 2:
        out |= {"ci": [None, None], "se": None, "df": None, "method": "one split: no interval (the spread between splits builds it)"}
        return out
    values = [SplitValue(p, np.empty(0), 0.0, len(per_split[k]), len(per_split[k]) == 1, *split_sizes[k], 0, 0)
              for k, p in zip(splits, points, strict=True)]
    e = combine(values, level=level, min_patients_per_class=0, n_patients=(0, 0), bounds=bounds)
    finite = math.isfinite(e.ci[0]) and math.isfinite(e.ci[1])
    out |= {"ci": [e.ci[0], e.ci[1]] if finite else [None, None], "se": e.se if math.isfinite(e.se) else None, "df": e.df,
            "level": level, "method": e.method, "notes": list(e.notes)}
    return out


def family_fidelity(audits: Sequence[Mapping[str, Any]], split_sizes: Mapping[int, tuple[int, int]], *, reference: str = "dcgan",
                    level: float = 0.95) -> list[dict[str, Any]]:
    """One entry per (family, fraction) with measured cells: the family's per-patient 1-NN accuracy
    (``synthetic``), its difference from the real floor in the same cells (``minus_floor``), (other
    families) its difference from ``reference`` in the cells both measured, same split, class and
    GAN seed (``minus_reference``), and its frames' fine detail relative to the real test frames'
    (``fine_detail``, 1 = real's; every audited generator has it): each an estimate over the outer
    splits with a ``level`` interval, absent where no cell measured it.

    ``split_sizes``: outer split -> (test patients, training patients) of the split, for the
    corrected t's ``n_test/n_train`` term. Lower accuracy is closer to real; the floor is what new
    real patients read, a lower bound rather than the ideal (see the report's family note).
    """
    if not 0.5 <= level < 1:
        raise ValueError(f"level={level}: a confidence level in [0.5, 1), e.g. 0.95")
    cells = _cell_values(audits)
    missing = sorted({k for c in cells.values() for (k, _, _) in c} - set(split_sizes))
    if missing:
        raise ValueError(f"split_sizes has no (test, training) patient counts for outer split(s) {missing}")
    families = sorted({f for f, _ in cells}, key=lambda g: (g != reference, g))
    out = []
    for fam in families:
        for frac in sorted(f for g, f in cells if g == fam):
            mine = cells[(fam, frac)]
            per: dict[str, dict[int, list[float]]] = {q: {} for q in QUANTITIES}
            for (k, _, _), v in mine.items():
                if "synthetic" in v:
                    per["synthetic"].setdefault(k, []).append(v["synthetic"])
                    per["minus_floor"].setdefault(k, []).append(v["synthetic"] - v["floor"])
                if "fine_detail" in v:
                    per["fine_detail"].setdefault(k, []).append(v["fine_detail"])
            ref = cells.get((reference, frac), {})
            if fam != reference:
                for c in sorted(set(mine) & set(ref)):
                    if "synthetic" in mine[c] and "synthetic" in ref[c]:
                        per["minus_reference"].setdefault(c[0], []).append(mine[c]["synthetic"] - ref[c]["synthetic"])
            # distinct test patients behind the 1-NN cells: a (split, class)'s are the same for every GAN seed
            tested = {(k, label): v["n_test"] for (k, label, _), v in mine.items() if "n_test" in v}
            entry: dict[str, Any] = {"generator": fam, "fraction": frac, "reference": reference, "n_test_patients": int(sum(tested.values()))}
            for q, bounds in zip(QUANTITIES, ((0.0, 1.0), (-1.0, 1.0), (-1.0, 1.0), (0.0, math.inf)), strict=True):
                if per[q]:
                    entry[q] = _estimate(per[q], split_sizes, level=level, bounds=bounds)
            out.append(entry)
    return out
