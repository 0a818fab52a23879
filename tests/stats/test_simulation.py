"""Simulation tests with a known answer: coverage and verdict error rates of lusynth.stats.

200 simulated experiments per case (tests/stats/simulation.py: patient random effects shared by
arms, run-to-run training variance, 3 classifier seeds). Monte-Carlo slack: 3 binomial standard
errors at the nominal rate. The measured figures: ``python -m tests.stats.simulation``.
"""

import math

import pytest

from tests.stats.simulation import rates

N = 200


def _slack(p: float) -> float:
    return 3 * math.sqrt(p * (1 - p) / N)


@pytest.mark.parametrize("n_per_class", [6, 12])
def test_95pct_intervals_cover_a_true_gain_in_at_least_90pct(n_per_class: int) -> None:
    r = rates(n_per_class=n_per_class, auc_real=0.75, auc_other=0.85, arm="real+synthetic", n_datasets=N, seed=n_per_class)
    assert r["coverage"] >= 0.90, r


@pytest.mark.parametrize("n_per_class", [6, 12])
def test_no_effect_is_inconclusive_not_superior_at_the_nominal_rate(n_per_class: int) -> None:
    r = rates(n_per_class=n_per_class, auc_real=0.8, auc_other=0.8, arm="real+synthetic", n_datasets=N, seed=100 + n_per_class)
    assert r["coverage"] >= 0.90, r
    assert r["superior"] <= 0.025 + _slack(0.025), r  # one-sided at 2.5%: the two-sided 95% interval's lower end
    assert r["inconclusive"] >= 0.90, r


def test_non_inferiority_is_rarely_claimed_when_the_true_loss_equals_the_margin() -> None:
    r = rates(n_per_class=12, auc_real=0.8, auc_other=0.75, arm="synthetic", margin=0.05, n_datasets=N, seed=7)
    assert r["non-inferior"] + r["superior"] <= 0.025 + _slack(0.025), r


def test_cross_validation_intervals_cover_the_true_gain() -> None:
    # 3 folds of 12 patients per class: the Nadeau-Bengio path (a split per fold)
    r = rates(n_per_class=12, auc_real=0.75, auc_other=0.85, arm="real+synthetic", n_datasets=N, folds=3, seed=3)
    assert r["coverage"] >= 0.90, r


def test_repeated_cross_validation_intervals_cover_the_true_gain_and_hold_the_null() -> None:
    # 3 folds x 2 repeats: the same patients in two partitions, 6 splits that overlap in training
    # patients; the corrected t must not read them as 6 independent ones
    r = rates(n_per_class=12, auc_real=0.75, auc_other=0.85, arm="real+synthetic", n_datasets=N, folds=3, repeats=2, seed=5)
    assert r["coverage"] >= 0.90, r
    null = rates(n_per_class=12, auc_real=0.8, auc_other=0.8, arm="real+synthetic", n_datasets=N, folds=3, repeats=2, seed=6)
    assert null["superior"] <= 0.025 + _slack(0.025) and null["coverage"] >= 0.90, null


def test_a_true_gain_is_found_more_often_with_more_patients() -> None:
    # the tests above cannot pass by never deciding: power grows with the sample
    small = rates(n_per_class=6, auc_real=0.7, auc_other=0.9, arm="real+synthetic", n_datasets=100, seed=11)
    large = rates(n_per_class=40, auc_real=0.7, auc_other=0.9, arm="real+synthetic", n_datasets=100, seed=12)
    assert large["superior"] > small["superior"] and large["superior"] >= 0.5, (small, large)
