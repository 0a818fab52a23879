"""Class-stratified cluster bootstrap by patient, vectorised, shared by every arm of a split.

A resample draws, with replacement, as many positive patients as the split has from its positive
patients, and as many negative patients from its negatives: every resample holds both classes, so
AUC, sensitivity and specificity are defined in every resample (an unstratified resample of a 2+2
holdout has no positive one time in sixteen). A resample is a row of integer weights on the
patients, and each metric of each resample is a weighted sum (one matrix product per metric);
the same weights are applied to every classifier of the split, so differences between arms are
paired (common random numbers). Metrics that are still undefined in a resample (e.g. F1 with no
predicted and no true positive) stay NaN and are counted, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lusynth.metrics.classification import METRICS, weighted_metrics

__all__ = ["METRICS", "RunMetrics", "run_metrics", "stratified_weights"]


def stratified_weights(labels: np.ndarray, *, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n_patients) draw counts: each class resampled within itself, sizes kept."""
    labels = np.asarray(labels).astype(np.int64)
    w = np.zeros((n_resamples, labels.size), dtype=np.float64)
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        if idx.size:
            w[:, idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=n_resamples)
    return w


@dataclass(frozen=True)
class RunMetrics:
    """One classifier's metrics on one split's test patients: the point value and every resample."""

    point: dict[str, float]
    replicates: dict[str, np.ndarray]  # metric -> (R,), NaN where undefined

    def n_undefined(self, metric: str) -> int:
        """Resamples in which ``metric`` is undefined."""
        return int(np.count_nonzero(~np.isfinite(self.replicates[metric])))


def run_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float, weights: np.ndarray) -> RunMetrics:
    """:data:`METRICS` at ``threshold`` on the patients (point) and on each row of ``weights``."""
    w = np.vstack([np.ones((1, np.asarray(labels).size)), weights])  # row 0: the patients as they are
    v = weighted_metrics(labels, scores, w, threshold=threshold)
    return RunMetrics(point={m: float(v[m][0]) for m in METRICS}, replicates={m: np.asarray(v[m][1:], dtype=np.float64) for m in METRICS})
