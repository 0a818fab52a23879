"""The statistics of the privacy audit: exact binomial intervals, patient-level AUC inference,
TPR at a fixed FPR, and the sample sizes a decision would need.

The unit of evidence is the **patient**: frames of one patient are near-duplicates, so a
membership test's sample size is the number of patients, never the number of frames. Frames of a
generator, on the other hand, are independent draws (independent latents), so rates over
synthetic frames get exact binomial (Clopper-Pearson) intervals, conditional on the real data.

Pure: arrays in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "auc_inference",
    "clopper_pearson",
    "mann_whitney_auc",
    "permutation_share_pvalue",
    "required_frames_for_rate",
    "required_patients_for_auc",
    "tpr_at_fpr",
]


def clopper_pearson(k: int, n: int, *, ci: float = 0.95) -> tuple[float, float]:
    """Exact two-sided ``ci`` interval for a binomial proportion ``k / n`` (scipy's ``exact``)."""
    if n <= 0:
        return 0.0, 1.0
    res = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=ci, method="exact")
    return float(res.low), float(res.high)


def mann_whitney_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos score > neg score) + 0.5 P(tie): the ROC AUC, from ranks (ties averaged)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    n1, n0 = len(pos), len(neg)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _auc_many(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` (R, n) against boolean ``labels`` of shape (R, n) or (n,)."""
    ranks = stats.rankdata(scores, axis=1)
    labels = np.broadcast_to(labels, scores.shape)
    n1 = labels.sum(axis=1)
    n0 = labels.shape[1] - n1
    r1 = np.where(labels, ranks, 0.0).sum(axis=1)
    return (r1 - n1 * (n1 + 1) / 2) / (n1 * n0)


def auc_inference(
    member: np.ndarray,
    nonmember: np.ndarray,
    *,
    ci: float = 0.95,
    n_permutations: int = 2000,
    n_bootstrap: int = 1000,
    seed: int = 0,
    fail_ci: float | None = None,
) -> dict[str, Any]:
    """Patient-level membership AUC with a permutation p-value and a bootstrap interval.

    ``member`` / ``nonmember``: one score per patient (higher = "more likely trained on").
    The p-value (one-sided, H0: AUC = 0.5, members and non-members exchangeable) permutes the
    member labels over patients: ``n_permutations`` random relabellings, and the (b + 1) / (B + 1)
    estimator, which keeps the test's size at or below its level. The interval is the percentile interval of a
    bootstrap that resamples patients within each group (stratified), so both group sizes stay
    fixed; with fewer than ~10 patients per side it is wide, as it should be. ``lo_fail`` is the
    lower bound at ``fail_ci`` (the gate's Bonferroni-adjusted level), from the same resamples.
    """
    m = np.asarray(member, np.float64)
    u = np.asarray(nonmember, np.float64)
    if m.size < 1 or u.size < 1:
        raise ValueError(f"auc_inference: need at least one member and one non-member patient, got {m.size} and {u.size}")
    auc = mann_whitney_auc(m, u)
    rng = np.random.default_rng(seed)
    scores = np.concatenate([m, u])
    labels = np.zeros(scores.size, bool)
    labels[: m.size] = True
    perm_labels = np.array([rng.permutation(labels) for _ in range(n_permutations)])
    null = _auc_many(np.broadcast_to(scores, perm_labels.shape), perm_labels)
    p = (1 + int(np.sum(null >= auc - 1e-12))) / (n_permutations + 1)
    bm = m[rng.integers(0, m.size, size=(n_bootstrap, m.size))]
    bu = u[rng.integers(0, u.size, size=(n_bootstrap, u.size))]
    boot = _auc_many(np.concatenate([bm, bu], axis=1), labels)
    alpha = 1 - ci
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    lo_fail = np.quantile(boot, (1 - fail_ci) / 2) if fail_ci is not None else lo
    return {"auc": auc, "lo": float(lo), "hi": float(hi), "lo_fail": float(lo_fail), "p_value": float(p),
            "n_members": int(m.size), "n_nonmembers": int(u.size)}


def tpr_at_fpr(member: np.ndarray, nonmember: np.ndarray, fpr: float, *, ci: float = 0.95) -> dict[str, float]:
    """True-positive rate of the attack at a false-positive rate of at most ``fpr`` (Carlini et
    al. 2022), over patients.

    The threshold is the smallest score that flags at most ``floor(fpr * n_nonmembers)``
    non-members (so the achieved FPR, reported, is <= ``fpr``; with fewer than ``1 / fpr``
    non-members it is 0 and the TPR is that of "above every non-member"). The interval is the
    Clopper-Pearson interval of the member count above the threshold, conditional on the
    threshold.
    """
    m = np.sort(np.asarray(member, np.float64))
    u = np.sort(np.asarray(nonmember, np.float64))[::-1]
    allowed = int(math.floor(fpr * u.size + 1e-9))
    threshold = u[allowed] if allowed < u.size else -np.inf  # flag strictly above it
    k = int(np.sum(m > threshold))
    lo, hi = clopper_pearson(k, m.size, ci=ci)
    return {"fpr": float(fpr), "tpr": k / m.size, "lo": lo, "hi": hi, "achieved_fpr": float(np.sum(u > threshold) / u.size),
            "n_members": int(m.size), "n_nonmembers": int(u.size)}


def required_patients_for_auc(limit: float, *, ci: float = 0.95, power: float = 0.8, member_share: float = 0.5,
                              auc: float = 0.5, cap: int = 100_000) -> int:
    """Patients (members + non-members) for the upper ``ci`` bound of a patient-level AUC to fall
    below ``limit`` with probability ``power`` when the true AUC is ``auc`` (Hanley & McNeil 1982
    variance, members a ``member_share`` of patients).

    The power side of ``insufficient_evidence``: how many patients a PASS at that limit needs
    when the generator leaks nothing. Returns ``cap`` when the limit is not above ``auc``.
    """
    if limit <= auc:
        return cap
    z = stats.norm.ppf(1 - (1 - ci) / 2) + stats.norm.ppf(power)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    for n in range(4, cap):
        n1 = max(1, round(n * member_share))
        n0 = max(1, n - n1)
        var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
        if auc + z * math.sqrt(var) < limit:
            return n
    return cap


def required_frames_for_rate(rate: float, limit: float, *, ci: float = 0.95, cap: int = 10_000_000) -> int:
    """Synthetic frames for the upper Clopper-Pearson bound of an observed ``rate`` to fall below
    ``limit`` (bisection; ``cap`` when the rate itself is not below the limit)."""
    if rate >= limit:
        return cap

    def upper(n: int) -> float:
        return clopper_pearson(round(rate * n), n, ci=ci)[1]

    lo, hi = 1, 2
    while upper(hi) >= limit:
        lo, hi = hi, hi * 2
        if hi > cap:
            return cap
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if upper(mid) < limit else (mid, hi)
    return hi


def permutation_share_pvalue(counts: np.ndarray, is_member: np.ndarray, strata: Sequence[Any] | np.ndarray, *,
                             n_permutations: int = 2000, seed: int = 0) -> float:
    """One-sided p-value of "frames are nearest to member patients more often than chance".

    ``counts[j]``: synthetic frames whose nearest real patient is patient ``j``; ``is_member[j]``
    whether ``j`` is a training patient; member labels are permuted within ``strata`` (the class),
    so the test counts patients, not frames (valid however clustered the frames are).
    """
    counts = np.asarray(counts, np.float64)
    is_member = np.asarray(is_member, bool)
    strata = np.asarray(strata)
    observed = counts[is_member].sum()
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    hits = 0
    for _ in range(n_permutations):
        lab = is_member.copy()
        for g in groups:
            lab[g] = rng.permutation(is_member[g])
        hits += counts[lab].sum() >= observed - 1e-9
    return (1 + hits) / (n_permutations + 1)
