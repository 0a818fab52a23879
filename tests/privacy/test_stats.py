"""The audit's statistics against known answers and simulations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lusynth.privacy.stats import (
    auc_inference,
    clopper_pearson,
    mann_whitney_auc,
    permutation_share_pvalue,
    required_frames_for_rate,
    required_patients_for_auc,
    tpr_at_fpr,
)


def test_clopper_pearson_known_values_and_coverage() -> None:
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))  # the exact upper bound at k = 0
    rng = np.random.default_rng(0)
    ks = rng.binomial(50, 0.1, 400)
    covered = np.mean([clopper_pearson(int(k), 50)[0] <= 0.1 <= clopper_pearson(int(k), 50)[1] for k in ks])
    assert covered >= 0.95  # exact intervals never under-cover


def test_mann_whitney_auc_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    pos, neg = np.array([1.0, 2.0, 2.0, 5.0]), np.array([0.0, 2.0, 3.0])
    want = roc_auc_score(np.r_[np.ones(4), np.zeros(3)], np.r_[pos, neg])
    assert mann_whitney_auc(pos, neg) == pytest.approx(want)


def test_auc_permutation_pvalue_has_its_size_under_no_leakage() -> None:
    rng = np.random.default_rng(1)
    ps = [auc_inference(rng.normal(size=14), rng.normal(size=5), n_permutations=199, n_bootstrap=99, seed=i)["p_value"]
          for i in range(300)]
    rate = np.mean(np.array(ps) <= 0.05)
    assert rate <= stats.binom.ppf(0.99, 300, 0.05) / 300  # at most the nominal 5 % (up to simulation noise)


def test_auc_interval_covers_the_true_auc_and_detects_separation() -> None:
    rng = np.random.default_rng(2)
    shift = 1.0
    true_auc = stats.norm.cdf(shift / np.sqrt(2))
    res = [auc_inference(rng.normal(shift, 1, 40), rng.normal(0, 1, 40), n_permutations=99, n_bootstrap=400, seed=i)
           for i in range(150)]
    coverage = np.mean([r["lo"] <= true_auc <= r["hi"] for r in res])
    assert coverage >= 0.88  # percentile bootstrap, 40 + 40 patients: close to the nominal 95 %
    assert np.mean([r["p_value"] <= 0.05 for r in res]) > 0.95


def test_fail_level_bound_is_below_the_nominal_one() -> None:
    r = auc_inference(np.arange(10.0), np.arange(5.0), fail_ci=0.99, n_permutations=99, n_bootstrap=500)
    assert r["lo_fail"] <= r["lo"] <= r["auc"] <= r["hi"]


def test_tpr_at_fpr_known_answer() -> None:
    members = np.arange(100.0)  # 0..99
    nonmembers = np.arange(0.0, 50.0, 0.5)  # 100 non-members, 0..49.5
    r = tpr_at_fpr(members, nonmembers, 0.1)
    assert r["achieved_fpr"] <= 0.1
    # the threshold is the 11th largest non-member (44.5): members 45..99 are above it
    assert r["tpr"] == pytest.approx(55 / 100) and r["lo"] < 0.55 < r["hi"]
    few = tpr_at_fpr(members, nonmembers[:5], 0.01)  # fewer than 1/FPR non-members: above every one
    assert few["achieved_fpr"] == 0 and few["tpr"] == pytest.approx(np.mean(members > nonmembers[:5].max()))


def test_required_patients_for_auc_is_enough_in_simulation() -> None:
    n = required_patients_for_auc(0.75)
    assert required_patients_for_auc(0.6) > n > required_patients_for_auc(0.9) and required_patients_for_auc(0.5) == 100_000
    rng = np.random.default_rng(3)
    half = n // 2
    cleared = [auc_inference(rng.normal(size=half), rng.normal(size=n - half), n_permutations=99, n_bootstrap=300, seed=i)["hi"] < 0.75
               for i in range(80)]
    small = [auc_inference(rng.normal(size=3), rng.normal(size=3), n_permutations=99, n_bootstrap=300, seed=i)["hi"] < 0.75
             for i in range(80)]
    assert np.mean(cleared) >= 0.7 > 0.2 > np.mean(small)  # the size has its 80 % power (up to simulation noise)


def test_required_frames_for_rate() -> None:
    n = required_frames_for_rate(0.01, 0.1)
    assert clopper_pearson(round(0.01 * n), n)[1] < 0.1 <= clopper_pearson(round(0.01 * (n - 1)), n - 1)[1]
    assert required_frames_for_rate(0.2, 0.1) == 10_000_000


def test_permutation_share_pvalue_counts_patients_not_frames() -> None:
    # 400 frames all nearest to ONE member patient: frame-level binomial would say p ~ 0,
    # but one patient of 4 per stratum is a 1-in-2 chance of being a member
    counts = np.array([400, 0, 0, 0])
    p = permutation_share_pvalue(counts, np.array([True, True, False, False]), ["a"] * 4, n_permutations=999)
    assert 0.4 < p < 0.6
    spread = np.array([100, 100, 0, 0])
    assert permutation_share_pvalue(spread, np.array([True, True, False, False]), ["a"] * 4, n_permutations=999) < 0.25
