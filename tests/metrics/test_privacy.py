"""Privacy metrics: DCR, near-copy detection, memorisation rate, membership inference, the gate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lusynth.metrics.privacy import (
    AUDIT_KEYS,
    PrivacyGate,
    distance_attack_scores,
    distance_to_closest_record,
    membership_inference_auc,
    memorisation_rate,
    near_copy_mask,
    near_copy_threshold,
    privacy_audit,
)


def _frames(seed: int, n: int, d: int = 256) -> np.ndarray:
    """Flattened [0, 1] 'frames': a smooth random pattern per frame plus pixel noise."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.random((n, 1)) * 0.5 + rng.normal(0.3, 0.15, size=(n, d)), 0, 1).astype(np.float32)


def test_dcr_hand_case() -> None:
    train = np.array([[0.0, 0.0], [3.0, 4.0]])
    samples = np.array([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]])
    np.testing.assert_allclose(distance_to_closest_record(samples, train, block=1), [0.0, 3.0, 5.0])


def test_threshold_is_the_holdout_percentile() -> None:
    holdout_dcr = np.arange(101, dtype=np.float64)
    assert near_copy_threshold(holdout_dcr) == pytest.approx(1.0)
    assert near_copy_threshold(holdout_dcr, percentile=50) == pytest.approx(50.0)
    np.testing.assert_array_equal(near_copy_mask(np.array([0.0, 0.99, 1.0, 7.0]), 1.0), [True, True, False, False])
    assert not near_copy_mask(np.array([0.0]), 0.0).any()  # zero threshold flags nothing


def test_planted_copies_are_flagged_and_counted() -> None:
    train, holdout, fresh = _frames(0, 500), _frames(1, 300), _frames(2, 180)
    planted = train[np.random.default_rng(3).choice(500, 20, replace=False)]
    # Near-copies, not only exact ones: a GAN reproduces a frame up to small pixel noise.
    planted = planted + np.random.default_rng(4).normal(0, 0.01, planted.shape).astype(np.float32)
    synthetic = np.concatenate([fresh, planted])
    synthetic_dcr = distance_to_closest_record(synthetic, train, block=64)
    holdout_dcr = distance_to_closest_record(holdout, train, block=64)
    mask = near_copy_mask(synthetic_dcr, near_copy_threshold(holdout_dcr, percentile=1.0))
    assert mask[180:].all()
    assert mask[:180].mean() <= 0.03  # fresh frames flagged at about the 1 % holdout rate
    rate = memorisation_rate(synthetic_dcr, holdout_dcr)
    assert 20 / 200 <= rate <= 20 / 200 + 0.03


def test_memorisation_rate_of_fresh_data_is_about_the_percentile() -> None:
    train, holdout, fresh = _frames(5, 400), _frames(6, 400), _frames(7, 400)
    holdout_dcr = distance_to_closest_record(holdout, train)
    rate = memorisation_rate(distance_to_closest_record(fresh, train), holdout_dcr, percentile=5.0)
    assert rate == pytest.approx(0.05, abs=0.04)


def test_membership_auc_matches_sklearn_and_orientation() -> None:
    members, nonmembers = np.array([0.9, 0.8, 0.3]), np.array([0.1, 0.4])
    expected = roc_auc_score([1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1, 0.4])
    assert membership_inference_auc(members, nonmembers) == pytest.approx(expected)
    assert expected == pytest.approx(5 / 6)
    assert membership_inference_auc(members, nonmembers, higher_means_member=False) == pytest.approx(1 - expected)
    with pytest.raises(ValueError, match="member_scores: expected a non-empty 1-D"):
        membership_inference_auc(np.array([]), nonmembers)
    with pytest.raises(ValueError, match="nonmember_scores.*NaN"):
        membership_inference_auc(members, np.array([np.nan]))


def test_distance_attack_finds_members_of_a_memorising_generator() -> None:
    members, nonmembers = _frames(8, 200), _frames(9, 200)
    synthetic = members + np.random.default_rng(10).normal(0, 0.05, members.shape).astype(np.float32)
    auc = membership_inference_auc(distance_attack_scores(members, synthetic), distance_attack_scores(nonmembers, synthetic))
    assert auc > 0.95


def test_distance_attack_is_blind_when_synthetic_is_independent() -> None:
    members, nonmembers, synthetic = _frames(11, 300), _frames(12, 300), _frames(13, 300)
    auc = membership_inference_auc(distance_attack_scores(members, synthetic), distance_attack_scores(nonmembers, synthetic))
    assert auc == pytest.approx(0.5, abs=0.1)  # SE ~0.024 for 300 + 300 candidates


def test_attack_scores_are_minus_the_nearest_synthetic_distance() -> None:
    scores = distance_attack_scores(np.array([[0.0], [10.0]]), np.array([[1.0], [4.0]]))
    np.testing.assert_allclose(scores, [-1.0, -6.0])


def test_privacy_audit_clean_and_leaky_generators() -> None:
    train, holdout = _frames(14, 300), _frames(15, 300)
    clean = privacy_audit(_frames(16, 300), train, holdout)
    assert set(clean) == set(AUDIT_KEYS) - {"discriminator_mia_auc"}
    gate = PrivacyGate(max_discriminator_mia_auc=None)
    assert gate.check(clean) == (True, [])
    leaky = privacy_audit(train + 0.01, train, holdout)
    passed, reasons = gate.check(leaky)
    assert not passed
    assert {r.split(" ")[0] for r in reasons} == {"memorisation_rate", "distance_mia_auc", "median_dcr_synthetic"}


CLEAN = {
    "memorisation_rate": 0.01,
    "distance_mia_auc": 0.52,
    "discriminator_mia_auc": 0.55,
    "median_dcr_synthetic": 9.5,
    "median_dcr_holdout": 10.0,
}


def test_gate_passes_a_clean_audit() -> None:
    assert PrivacyGate().check(CLEAN) == (True, [])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("memorisation_rate", 0.05, "memorisation_rate = 0.05 > max 0.02"),
        ("distance_mia_auc", 0.71, "distance_mia_auc = 0.71 > max 0.6"),
        ("discriminator_mia_auc", 0.9, "discriminator_mia_auc = 0.9 > max 0.6"),
        ("median_dcr_synthetic", 7.0, "median_dcr_synthetic = 7 < min 0.8 x median_dcr_holdout (= 8)"),
    ],
)
def test_gate_fails_each_threshold_with_a_reason_naming_it(key: str, value: float, expected: str) -> None:
    passed, reasons = PrivacyGate().check({**CLEAN, key: value})
    assert not passed
    assert reasons == [expected]


def test_gate_fails_missing_or_non_finite_metrics_unless_disabled() -> None:
    audit = {k: v for k, v in CLEAN.items() if k != "discriminator_mia_auc"}
    passed, reasons = PrivacyGate().check(audit)
    assert not passed and reasons[0].startswith("discriminator_mia_auc missing")
    assert PrivacyGate(max_discriminator_mia_auc=None).check(audit) == (True, [])
    passed, reasons = PrivacyGate().check({**CLEAN, "distance_mia_auc": float("nan")})
    assert not passed and reasons == ["distance_mia_auc = nan is not a finite number"]


def test_gate_is_frozen_and_validates_thresholds() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PrivacyGate().max_memorisation_rate = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="max_distance_mia_auc"):
        PrivacyGate(max_distance_mia_auc=0.3)
    assert PrivacyGate(max_memorisation_rate=0.1).check({**CLEAN, "memorisation_rate": 0.05})[0]
