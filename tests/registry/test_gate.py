"""The promotion rule, as a pure function: both directions, the margin, and the privacy condition.
The gate recommends (candidate) or holds back (challenger, ineligible); it never makes a champion."""

import pytest

from lusynth.registry import CANDIDATE, CHALLENGER, CHAMPION, INELIGIBLE, AUCEstimate, ClassifierCandidate, best_per_arm, promotion_decision


def test_first_model_becomes_candidate_awaiting_review_never_champion() -> None:
    d = promotion_decision(AUCEstimate(0.7, 0.6, 0.8), None, uses_synthetic=False, privacy_passed=None)
    assert d.decision == CANDIDATE != CHAMPION and "no current champion" in d.reason and "awaiting review" in d.reason


@pytest.mark.parametrize(("lo", "expected"), [(0.81, CANDIDATE), (0.80, CANDIDATE), (0.79, CHALLENGER)])
def test_non_inferiority_lower_bound_against_champion_point_minus_margin(lo: float, expected: str) -> None:
    champ = AUCEstimate(0.82, 0.75, 0.9)
    d = promotion_decision(AUCEstimate(0.85, lo, 0.9), champ, uses_synthetic=False, privacy_passed=None, margin=0.02,
                           champion_version="3")
    assert d.decision == expected and "v3" in d.reason


@pytest.mark.parametrize("privacy", [False, None])
def test_synthetic_data_without_a_passed_privacy_gate_is_never_champion(privacy: bool | None) -> None:
    d = promotion_decision(AUCEstimate(0.99, 0.98, 1.0), None, uses_synthetic=True, privacy_passed=privacy)
    assert d.decision == INELIGIBLE and "privacy" in d.reason


def test_synthetic_data_with_passed_privacy_gate_can_be_candidate() -> None:
    d = promotion_decision(AUCEstimate(0.9, 0.85, 0.95), AUCEstimate(0.86, 0.8, 0.9), uses_synthetic=True, privacy_passed=True)
    assert d.decision == CANDIDATE and "privacy gate passed" in d.reason


def test_no_holdout_ci_means_challenger() -> None:
    assert promotion_decision(None, None, uses_synthetic=False, privacy_passed=None).decision == CHALLENGER


def test_best_per_arm_uses_validation_auc() -> None:
    def c(arm: str, auc: float, seed: int) -> ClassifierCandidate:
        return ClassifierCandidate(classifier_dir=None, arm=arm, fraction=1.0, seed=seed, val_auc=auc, data_digest="d")  # type: ignore[arg-type]

    best = best_per_arm([c("real", 0.7, 0), c("real", 0.8, 1), c("synthetic", 0.6, 0), c("synthetic", float("nan"), 1)])
    assert best["real"].seed == 1 and best["synthetic"].seed == 0


def test_only_arms_trained_on_synthetic_frames_need_the_privacy_gate() -> None:
    # real+aug is classical augmentation of real frames: a failed audit of some GAN must not bar it
    def cand(arm: str, digests: list[str] | None = None) -> ClassifierCandidate:
        return ClassifierCandidate(classifier_dir=None, arm=arm, fraction=1.0, seed=0, val_auc=0.8, data_digest="d",  # type: ignore[arg-type]
                                   synthetic_digests=digests or [])

    assert not cand("real").uses_synthetic and not cand("real+aug").uses_synthetic
    assert cand("real+synthetic").uses_synthetic and cand("synthetic").uses_synthetic
    assert cand("real", ["abc"]).uses_synthetic  # whatever its arm, a classifier that read a synthetic set
