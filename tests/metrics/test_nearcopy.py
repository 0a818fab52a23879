"""The near-copy policy: one validated rule, its threshold, rate and fitted filter."""

from __future__ import annotations

import numpy as np
import pytest

from lusynth.errors import InputError
from lusynth.metrics.nearcopy import NearCopyPolicy, pixels
from lusynth.params import as_dict, stage_params


@pytest.mark.parametrize("bad", [0, 0.0, 100, 150.0, -1.0, float("nan"), "1", True])
def test_percentile_outside_the_open_interval_is_refused_naming_field_and_range(bad: object) -> None:
    with pytest.raises(ValueError, match=r"near_copy\.percentile=.*a percentile in \(0, 100\)"):
        NearCopyPolicy(percentile=bad)  # type: ignore[arg-type]


def test_unknown_feature_space_is_refused() -> None:
    with pytest.raises(ValueError, match=r"near_copy\.features='inception'.*pixels"):
        NearCopyPolicy(features="inception")


def test_profile_section_builds_the_policy_and_overrides_apply() -> None:
    for profile in ("demo", "paper", "tiny"):
        assert stage_params("near_copy", profile) == NearCopyPolicy()
    assert stage_params("near_copy", "demo", {"percentile": 5}).percentile == 5.0
    with pytest.raises(InputError, match=r"near_copy\.percentile"):
        stage_params("near_copy", "demo", {"percentile": 100})
    assert as_dict(NearCopyPolicy()) == {"percentile": 1.0, "features": "pixels"}


def test_threshold_is_numpys_percentile_of_the_reference_dcr() -> None:
    reference = np.array([0.5, 3.0, 1.0, 7.0, 2.0, 0.25, 4.0, 9.0, 6.0, 5.0])
    for p in (1.0, 10.0, 37.5, 50.0, 99.0):
        assert NearCopyPolicy(percentile=p).threshold(reference) == pytest.approx(np.percentile(reference, p))


def test_rate_is_the_share_strictly_below_the_threshold() -> None:
    reference = np.arange(1.0, 101.0)  # 1..100: the 10th percentile is 10.9
    synthetic = np.array([0.0, 5.0, 10.8, 10.9, 50.0])
    assert NearCopyPolicy(percentile=10.0).rate(synthetic, reference) == pytest.approx(3 / 5)


def test_fitted_filter_flags_copies_of_training_frames_only() -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    reference = rng.integers(0, 256, (30, 8, 8), dtype=np.uint8)
    fresh = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    filt = NearCopyPolicy(percentile=1.0).fit(train, reference)
    assert filt.percentile == 1.0
    assert filt.threshold == pytest.approx(np.percentile(filt.reference_dcr, 1.0))
    np.testing.assert_allclose(filt.train, pixels(train))
    mask, dcr = filt.mask(np.concatenate([train[:3], fresh]))
    assert mask[:3].all() and dcr[:3].max() < 1e-6
    assert not mask[3:].any()  # random frames are as far from training as the reference is
    np.testing.assert_array_equal(filt.dcr(train[:3]), dcr[:3])
