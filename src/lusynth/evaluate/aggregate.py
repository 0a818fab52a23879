"""The paper's table over seeds, and the headline answers.

Table: rows = training fraction, columns = arm, cells = AUC / accuracy / F1 as the mean over
seeds with a CI. The CI is a percentile interval of the seed-mean over the patient-level bootstrap
resamples: every classifier is bootstrapped with the same resamples of the one holdout, so
resample ``b`` of the seed-mean is the mean of the seeds' resample ``b``. It measures how much the
holdout's patients move the seed-mean; the spread between seeds is reported beside it (``std``).

Headline: at each fraction, is ``real+synthetic`` better than ``real`` (the paired difference of
AUC and its CI: "better" when the whole CI is above 0, "worse" when below, otherwise "no clear
difference"), and how close is ``synthetic`` to ``real`` (the same difference, and the ratio of
mean AUCs).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lusynth.classifier.params import ARMS
from lusynth.evaluate.holdout import HoldoutPrediction
from lusynth.evaluate.params import EvaluateParams
from lusynth.metrics.classification import BootstrapCI, percentile_interval

TABLE_METRICS = ("auc", "accuracy", "f1")


def _nanmean_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Mean over seeds per resample; a resample where every seed is undefined stays NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'mean of empty slice' for those resamples
        return np.nanmean(np.stack(rows), axis=0)


def _cell(boots: Sequence[BootstrapCI], metric: str, ci: float) -> dict[str, float]:
    points = np.array([b.point[metric] for b in boots], dtype=np.float64)
    reps = _nanmean_rows([b.replicates[metric] for b in boots])
    lo, hi = percentile_interval(reps, ci)
    return {"mean": float(np.nanmean(points)) if np.isfinite(points).any() else float("nan"), "lo": lo, "hi": hi,
            "std": float(np.nanstd(points, ddof=1)) if len(points) > 1 else 0.0, "n_seeds": len(points)}


def results_table(
    preds: Sequence[HoldoutPrediction],
    boots: dict[str, dict[tuple[str, str], BootstrapCI]],
    params: EvaluateParams,
    *,
    metrics: Sequence[str] = TABLE_METRICS,
) -> dict[str, Any]:
    """{level, threshold, metrics, arms, rows: [{fraction, cells: {arm: {metric: cell}}}]}."""
    key = (params.table_level, params.table_threshold)
    fractions = sorted({p.fraction for p in preds})
    arms = [a for a in ARMS if any(p.arm == a for p in preds)]
    rows = []
    for f in fractions:
        cells: dict[str, Any] = {}
        for arm in arms:
            mine = [boots[p.name][key] for p in preds if p.arm == arm and p.fraction == f]
            if mine:
                cells[arm] = {m: _cell(mine, m, params.ci) for m in metrics}
        rows.append({"fraction": f, "cells": cells})
    return {"level": params.table_level, "threshold": params.table_threshold, "metrics": list(metrics),
            "arms": arms, "ci": params.ci, "rows": rows}


def _paired(a: Sequence[BootstrapCI], b: Sequence[BootstrapCI], metric: str, ci: float) -> dict[str, float]:
    diff_points = np.array([x.point[metric] - y.point[metric] for x, y in zip(a, b, strict=False)])
    reps = _nanmean_rows([x.replicates[metric] - y.replicates[metric] for x, y in zip(a, b, strict=False)])
    lo, hi = percentile_interval(reps, ci)
    finite = reps[np.isfinite(reps)]
    return {"diff": float(np.nanmean(diff_points)), "lo": lo, "hi": hi, "n_seeds": len(diff_points),
            "p_not_better": float((finite <= 0).mean()) if finite.size else float("nan")}


def verdict(lo: float, hi: float) -> str:
    """'better' / 'worse' when the CI of the difference excludes 0, else 'no clear difference'."""
    if np.isfinite(lo) and lo > 0:
        return "better"
    if np.isfinite(hi) and hi < 0:
        return "worse"
    return "no clear difference"


def headline(
    preds: Sequence[HoldoutPrediction],
    boots: dict[str, dict[tuple[str, str], BootstrapCI]],
    params: EvaluateParams,
) -> dict[str, Any]:
    """Per fraction: real+synthetic vs real and synthetic vs real (paired, over common seeds)."""
    key = (params.table_level, params.table_threshold)
    by = {(p.arm, p.fraction, p.seed): p for p in preds}
    out_rows, sentences = [], []
    for f in sorted({p.fraction for p in preds}):
        row: dict[str, Any] = {"fraction": f}
        for arm, label in (("real+synthetic", "real_plus_synthetic_vs_real"), ("synthetic", "synthetic_vs_real")):
            seeds = sorted(s for (a, fr, s) in by if a == arm and fr == f and ("real", f, s) in by)
            if not seeds:
                continue
            a = [boots[by[(arm, f, s)].name][key] for s in seeds]
            b = [boots[by[("real", f, s)].name][key] for s in seeds]
            comp: dict[str, Any] = {m: _paired(a, b, m, params.ci) for m in TABLE_METRICS}
            auc = comp["auc"]
            comp["verdict"] = verdict(auc["lo"], auc["hi"])
            real_auc = float(np.nanmean([x.point["auc"] for x in b]))
            arm_auc = float(np.nanmean([x.point["auc"] for x in a]))
            comp["auc_ratio"] = arm_auc / real_auc if real_auc > 0 else float("nan")
            row[label] = comp
            pct = int(round(params.ci * 100))
            if arm == "real+synthetic":
                sentences.append(
                    f"fraction {f:g}: real+synthetic vs real, AUC difference {auc['diff']:+.3f} "
                    f"({pct}% CI {auc['lo']:+.3f} to {auc['hi']:+.3f}, {len(seeds)} seed(s)): {comp['verdict']}."
                )
            else:
                sentences.append(
                    f"fraction {f:g}: synthetic only reaches {comp['auc_ratio']:.1%} of the real AUC "
                    f"(difference {auc['diff']:+.3f}, {pct}% CI {auc['lo']:+.3f} to {auc['hi']:+.3f}): {comp['verdict']}."
                )
        out_rows.append(row)
    return {"metric": "auc", "level": params.table_level, "threshold": params.table_threshold, "fractions": out_rows,
            "summary": sentences}
