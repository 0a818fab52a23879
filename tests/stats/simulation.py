"""Simulated score tables with a known answer (no training): the generating model and its truth.

Patient i of class y_i has a random effect u_i ~ N(0, tau2) shared by every arm (a hard patient is
hard for every classifier: this is what makes arms paired). Training run r of arm a adds a
run effect eta_r ~ N(0, omega2) to the arm's separation mu_a (seed / fold / GAN variance), and
noise e ~ N(0, sigma2) per patient and run:

    score = (mu_a + eta_r) * y + u + e

A run's population AUC is Phi((mu_a + eta_r) / c), c = sqrt(2 (tau2 + sigma2)), so the expected
AUC of arm a over runs is Phi(mu_a / sqrt(c^2 + omega2)): the true value the intervals must cover.
Run ``python -m tests.stats.simulation`` for the coverage and verdict rates the tests assert.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

TAU2, SIGMA2, OMEGA2 = 1.0, 0.5, 0.1


def true_auc(mu: float) -> float:
    """Expected population AUC of an arm with separation ``mu`` over training runs."""
    return float(st.norm.cdf(mu / math.sqrt(2 * (TAU2 + SIGMA2) + OMEGA2)))


def mu_for_auc(auc: float) -> float:
    """The separation whose expected AUC is ``auc``."""
    return float(st.norm.ppf(auc) * math.sqrt(2 * (TAU2 + SIGMA2) + OMEGA2))


def simulate_table(rng: np.random.Generator, *, n_per_class: int, mus: dict[str, float], folds: int = 1,
                   repeats: int = 1, classifier_seeds: int = 3, gan_seeds: int = 1, fraction: float = 0.5,
                   family_mus: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """One simulated experiment as a score table (see lusynth.stats.scores.COLUMNS).

    ``folds == 1``: one split, every patient a test patient; ``folds > 1``: patients dealt into
    class-stratified folds, each fold's runs drawn anew. ``repeats > 1`` (repeated cross-validation):
    the same patients (same random effects) dealt into new folds per repeat, with new runs.
    ``family_mus`` (generator family -> {arm: separation}): the arms other than ``real`` once per
    family, on the same patients (column ``generator``); default: ``mus``' arms as the one DCGAN family.
    """
    families = family_mus or {"dcgan": {a: m for a, m in mus.items() if a != "real"}}
    arms = [("real", "", mus["real"])] if "real" in mus else []
    arms += [(a, g, m) for g, fam in families.items() for a, m in fam.items()]
    n = 2 * n_per_class
    y = np.r_[np.zeros(n_per_class, np.int64), np.ones(n_per_class, np.int64)]
    u = rng.normal(0.0, math.sqrt(TAU2), n)
    ids = np.array([f"p{i:03d}" for i in range(n)])
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("repeat", "fold", "arm", "generator", "gan_seed", "classifier_seed", "patient_id",
                                                          "label", "score", "threshold")}
    for rep in range(repeats):
        fold_of = np.empty(n, np.int64)
        for cls in (0, 1):
            idx = rng.permutation(np.flatnonzero(y == cls))
            fold_of[idx] = np.arange(idx.size) % folds
        for fold in range(folds):
            te = np.flatnonzero(fold_of == fold)
            for arm, family, mu in arms:
                for g in range(gan_seeds if arm != "real" else 1):
                    for s in range(classifier_seeds):
                        eta = rng.normal(0.0, math.sqrt(OMEGA2))
                        for c, v in (("repeat", rep), ("fold", fold), ("arm", arm), ("generator", family), ("gan_seed", g), ("classifier_seed", s),
                                     ("threshold", (mu + eta) / 2)):
                            cols[c].append(np.full(te.size, v))
                        cols["patient_id"].append(ids[te])
                        cols["label"].append(y[te])
                        cols["score"].append((mu + eta) * y[te] + u[te] + rng.normal(0.0, math.sqrt(SIGMA2), te.size))
    df = pd.DataFrame({c: np.concatenate(v) for c, v in cols.items()})
    df.insert(3, "fraction", fraction)
    return df


def rates(*, n_per_class: int, auc_real: float, auc_other: float, arm: str, n_datasets: int = 200, folds: int = 1,
          repeats: int = 1, margin: float = 0.05, n_resamples: int = 400, seed: int = 0) -> dict[str, float]:
    """Over ``n_datasets`` simulated experiments: interval coverage of the true difference, verdict rates."""
    from lusynth.stats.questions import Analysis, AnalysisParams

    rng = np.random.default_rng(seed)
    mus = {"real": mu_for_auc(auc_real), arm: mu_for_auc(auc_other)}
    truth = auc_other - auc_real
    params = AnalysisParams(n_resamples=n_resamples, margin=margin, secondary_metrics=(), min_patients_per_class=1,
                            added=arm if arm == "real+synthetic" else "none", replacement=arm if arm == "synthetic" else "none")
    covered, verdicts = 0, {"superior": 0, "non-inferior": 0, "inferior": 0, "inconclusive": 0}
    for _ in range(n_datasets):
        a = Analysis(simulate_table(rng, n_per_class=n_per_class, mus=mus, folds=folds, repeats=repeats), params)
        qs, _ = a.questions()
        (q,) = qs
        covered += q["ci"][0] <= truth <= q["ci"][1]
        verdicts[q["verdict"]] += 1
    return {"coverage": covered / n_datasets, **{k: v / n_datasets for k, v in verdicts.items()}}


def family_rates(*, n_per_class: int, auc_reference: float, auc_challenger: float, n_datasets: int = 200, folds: int = 1,
                 margin: float = 0.05, n_resamples: int = 400, seed: int = 0) -> dict[str, float]:
    """Question (c) over ``n_datasets`` simulated experiments: a ``fastgan`` family's real+synthetic arm
    against the ``dcgan`` family's, both on the same patients (shared random effects: paired), with
    true expected AUCs ``auc_challenger`` and ``auc_reference``; interval coverage of the true
    difference and verdict rates."""
    from lusynth.stats.questions import Analysis, AnalysisParams

    rng = np.random.default_rng(seed)
    arm = "real+synthetic"
    families = {"dcgan": {arm: mu_for_auc(auc_reference)}, "fastgan": {arm: mu_for_auc(auc_challenger)}}
    truth = auc_challenger - auc_reference
    params = AnalysisParams(n_resamples=n_resamples, margin=margin, secondary_metrics=(), min_patients_per_class=1, replacement="none")
    covered, verdicts = 0, {"superior": 0, "non-inferior": 0, "inferior": 0, "inconclusive": 0}
    for _ in range(n_datasets):
        a = Analysis(simulate_table(rng, n_per_class=n_per_class, mus={"real": mu_for_auc(0.8)}, folds=folds, family_mus=families), params)
        cs, _ = a.comparisons()
        (c,) = cs
        covered += c["ci"][0] <= truth <= c["ci"][1]
        verdicts[c["verdict"]] += 1
    return {"coverage": covered / n_datasets, **{k: v / n_datasets for k, v in verdicts.items()}}


if __name__ == "__main__":
    import time

    for n in (6, 12):
        for folds, repeats in ((1, 1), (3, 1), (3, 2)):
            t0 = time.perf_counter()
            cov = rates(n_per_class=n, auc_real=0.75, auc_other=0.85, arm="real+synthetic", folds=folds, repeats=repeats)
            null = rates(n_per_class=n, auc_real=0.8, auc_other=0.8, arm="real+synthetic", folds=folds, repeats=repeats, seed=1)
            ni = rates(n_per_class=n, auc_real=0.8, auc_other=0.75, arm="synthetic", folds=folds, repeats=repeats, seed=2)
            print(f"{n} patients/class, {folds} fold(s) x {repeats} repeat(s): coverage(diff=+0.10) {cov['coverage']:.3f}, "
                  f"coverage(null) {null['coverage']:.3f}, superior under null {null['superior']:.3f}, "
                  f"non-inferior at diff=-margin {ni['non-inferior'] + ni['superior']:.3f}, "
                  f"power(a, +0.10) {cov['superior']:.3f} ({time.perf_counter() - t0:.1f}s)")
    for n in (6, 12):
        for folds in (1, 3):
            t0 = time.perf_counter()
            eq = family_rates(n_per_class=n, auc_reference=0.8, auc_challenger=0.8, folds=folds, seed=20 + n)
            worse = family_rates(n_per_class=n, auc_reference=0.8, auc_challenger=0.75, folds=folds, seed=40 + n)
            print(f"(c) {n} patients/class, {folds} fold(s): coverage(equal) {eq['coverage']:.3f}, superior when equal {eq['superior']:.3f}, "
                  f"non-inferior when equal {eq['non-inferior'] + eq['superior']:.3f}, non-inferior at -margin "
                  f"{worse['non-inferior'] + worse['superior']:.3f}, coverage(-margin) {worse['coverage']:.3f} ({time.perf_counter() - t0:.1f}s)")
