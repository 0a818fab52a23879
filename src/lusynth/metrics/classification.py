"""Binary classification metrics, operating thresholds, group aggregation and bootstrap CIs.

Pure functions over arrays (no IO). Conventions: ``y`` is 0/1 (1 = positive class), ``prob`` the
predicted probability of the positive class, and a frame is called positive when
``prob >= threshold`` (scikit-learn's convention for ``roc_curve`` thresholds).

Bootstrap: patients (or any cluster id in ``groups``) are resampled with replacement, and each
resample is expressed as integer weights on the frames, so every metric of every resample is a
weighted sum computed as one matrix product: 1000 resamples of a few thousand frames take well
under a second. The same ``seed`` and the same ``groups`` give the same resamples, so metrics of
different classifiers on one holdout are paired (common random numbers). These frame-level
intervals are descriptive; the experiment's tests are patient-level (:mod:`lusynth.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve

METRICS: tuple[str, ...] = ("auc", "accuracy", "f1", "sensitivity", "specificity")
_CHUNK_BYTES = 64 << 20  # bound on the (resamples x frames) weight block held at once


def _check(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(np.int64).ravel()
    prob = np.asarray(prob, dtype=np.float64).ravel()
    if y.shape != prob.shape:
        raise ValueError(f"y has {y.shape[0]} entries but prob has {prob.shape[0]}; pass one probability per label")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("y must be 0/1 labels (1 = positive class)")
    if np.isnan(prob).any():
        raise ValueError("prob contains NaN; the classifier output is broken")
    return y, prob


def roc_auc(y: np.ndarray, prob: np.ndarray) -> float:
    """ROC AUC; NaN when only one class is present (AUC is undefined there)."""
    y, prob = _check(y, prob)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, prob))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def binary_metrics(y: np.ndarray, prob: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy, F1, sensitivity, specificity, PPV, NPV at ``threshold``, plus counts."""
    y, prob = _check(y, prob)
    pred = (prob >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "auc": roc_auc(y, prob),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "threshold": float(threshold),
        "n": int(y.size),
        "n_positive": int(y.sum()),
    }


def choose_threshold(y: np.ndarray, prob: np.ndarray, *, rule: str = "youden") -> float:
    """Operating threshold chosen on validation data.

    ``youden``: maximise sensitivity + specificity - 1 over the ROC curve's thresholds;
    ``f1``: maximise F1 over the precision-recall curve's thresholds. Ties go to the higher
    threshold. With a single class present there is nothing to choose and 0.5 is returned.
    """
    y, prob = _check(y, prob)
    if len(np.unique(y)) < 2:
        return 0.5
    if rule == "youden":
        fpr, tpr, thr = roc_curve(y, prob)
        j = tpr - fpr
        i = int(np.argmax(j))  # thresholds decrease, so the first maximum is the highest threshold
        return float(min(thr[i], 1.0))
    if rule == "f1":
        precision, recall, thr = precision_recall_curve(y, prob)
        p, r = precision[:-1], recall[:-1]  # the last point has no threshold
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        best = np.flatnonzero(f1 == f1.max())
        return float(thr[best[-1]])  # thresholds increase here: the last maximum is the highest
    raise ValueError(f"threshold rule {rule!r}: choose 'youden' or 'f1'")


def roc_points(y: np.ndarray, prob: np.ndarray) -> dict[str, list[float]]:
    """ROC curve as plain lists (fpr, tpr, thresholds), e.g. for KFP ClassificationMetrics.

    scikit-learn's first threshold is +inf (nothing called positive); it is replaced by the next
    float above max(1, max prob) so the lists are JSON-serialisable and keep their meaning.
    """
    y, prob = _check(y, prob)
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": [], "thresholds": []}
    fpr, tpr, thr = roc_curve(y, prob)
    top = float(np.nextafter(max(1.0, float(prob.max())), np.inf))
    thr = np.where(np.isfinite(thr), thr, top)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist()}


def bootstrap_weights(groups: Sequence[str] | np.ndarray, *, n_resamples: int, seed: int) -> np.ndarray:
    """Cluster-bootstrap weights (n_resamples, n_groups): how often each group is drawn per resample."""
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / max(n_groups, 1)), size=n_resamples).astype(np.float64)


def weighted_metrics(y: np.ndarray, prob: np.ndarray, weights: np.ndarray, *, threshold: float) -> dict[str, np.ndarray]:
    """Each of :data:`METRICS` for every row of ``weights`` (R, N) of frame weights, vectorised.

    With all weights 1 this equals :func:`binary_metrics` (ties in AUC count one half).
    """
    y, prob = _check(y, prob)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != y.size:
        raise ValueError(f"weights have {w.shape[1]} columns but there are {y.size} frames")
    pos = y == 1
    pred = prob >= threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        tp = w @ (pos & pred)
        fn = w @ (pos & ~pred)
        fp = w @ (~pos & pred)
        tn = w @ (~pos & ~pred)
        out = {
            "accuracy": (tp + tn) / (tp + tn + fp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
        }
        # AUC = P(score_pos > score_neg) + 0.5 P(tie), with weights, from one sort shared by all rows
        order = np.argsort(prob, kind="mergesort")
        ps = prob[order]
        starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
        ws = w[:, order]
        p_w = np.add.reduceat(ws * pos[order], starts, axis=1)
        n_w = np.add.reduceat(ws * ~pos[order], starts, axis=1)
        below = np.cumsum(n_w, axis=1) - n_w
        out["auc"] = (p_w * (below + 0.5 * n_w)).sum(1) / (p_w.sum(1) * n_w.sum(1))
    return out


def _frame_weights_chunks(groups: np.ndarray, n_resamples: int, seed: int, n_frames: int):
    _, codes = np.unique(groups, return_inverse=True)
    group_w = bootstrap_weights(groups, n_resamples=n_resamples, seed=seed)
    chunk = max(1, _CHUNK_BYTES // max(1, 8 * n_frames * 3))
    for i in range(0, n_resamples, chunk):
        yield group_w[i : i + chunk][:, codes]


@dataclass
class BootstrapCI:
    """Point estimates with percentile confidence intervals; ``replicates`` per metric (R,)."""

    point: dict[str, float]
    lo: dict[str, float]
    hi: dict[str, float]
    replicates: dict[str, np.ndarray]
    ci: float
    n_resamples: int

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {m: {"value": self.point[m], "lo": self.lo[m], "hi": self.hi[m]} for m in self.point}


def percentile_interval(replicates: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, ignoring undefined (NaN) resamples."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(r, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_metrics(
    y: np.ndarray,
    prob: np.ndarray,
    groups: Sequence[str] | np.ndarray,
    *,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Metrics at ``threshold`` with cluster (patient-level) bootstrap percentile CIs."""
    y, prob = _check(y, prob)
    groups = np.asarray(groups)
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci}: a confidence level in (0, 1), e.g. 0.95")
    point_all = binary_metrics(y, prob, threshold=threshold)
    point = {m: point_all[m] for m in METRICS}
    parts: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    for w in _frame_weights_chunks(groups, n_resamples, seed, y.size):
        for m, v in weighted_metrics(y, prob, w, threshold=threshold).items():
            parts[m].append(v)
    reps = {m: np.concatenate(v) if v else np.zeros(0) for m, v in parts.items()}
    lo, hi = {}, {}
    for m in METRICS:
        lo[m], hi[m] = percentile_interval(reps[m], ci)
    return BootstrapCI(point, lo, hi, reps, ci, n_resamples)
