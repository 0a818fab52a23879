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
    assert as_dict(NearCopyPolicy()) == {"percentile": 1.0, "features": "pixels", "reference": "pooled"}


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


def _patients(rng: np.random.Generator, n: int, per: int, mu: float, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``n`` patients of ``per`` uint8 frames each: a patient's centre is ``mu`` plus N(0, 20^2) per
    pixel, its frames the centre plus N(0, 8^2): frames cluster within patients, as clips do."""
    centre = mu + rng.normal(0, 20.0, (n, 1, size, size))
    frames = centre + rng.normal(0, 8.0, (n, per, size, size))
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8).reshape(n * per, size, size), np.repeat(np.arange(n), per)


def test_the_pooled_reference_is_the_validation_dcr_and_each_training_patient_against_the_others() -> None:
    from lusynth.metrics.privacy import distance_to_closest_record

    rng = np.random.default_rng(1)
    train, patients = _patients(rng, 3, 4, 100.0)
    val, _ = _patients(rng, 1, 5, 100.0)
    ref = NearCopyPolicy().reference_dcr(train, val, patients)
    x, v = pixels(train), pixels(val)
    expected = np.concatenate([distance_to_closest_record(v, x),
                               *(distance_to_closest_record(x[patients == p], x[patients != p]) for p in range(3))])
    np.testing.assert_allclose(ref, expected)
    filt = NearCopyPolicy().fit(train, val, patients)
    np.testing.assert_allclose(filt.reference_dcr, expected)
    np.testing.assert_array_equal(filt.reference_dcr[: len(val)], filt.dcr(val))  # the reference frames' own DCRs come first, in order
    assert filt.threshold == pytest.approx(np.percentile(expected, 1.0))
    # the validation-only rule, no patient ids, or one training patient: the validation DCR alone
    for policy, ids in ((NearCopyPolicy(reference="validation"), patients), (NearCopyPolicy(), None), (NearCopyPolicy(), np.zeros(12))):
        np.testing.assert_allclose(policy.reference_dcr(train, val, ids), expected[:5])
    with pytest.raises(ValueError, match="train_patients: 11 patient ids for 12 training frames"):
        NearCopyPolicy().reference_dcr(train, val, patients[:11])
    with pytest.raises(ValueError, match=r"near_copy\.reference='holdout'.*pooled"):
        NearCopyPolicy(reference="holdout")


def test_an_outlying_validation_patient_flags_every_faithful_frame_unless_the_training_patients_join_the_reference() -> None:
    """Known answers, 40 simulated classes of 6 training patients (10 frames each) and one validation
    patient. A faithful generator draws 20 fresh patients from the training population; a copier
    returns training frames plus N(0, 1) noise. With the validation patient from another scanner
    (mean 160 against 100: ``shared/data/pocus`` fold 0, abnormal, reads 127 against 45-57), the
    validation-only rule flags all of the faithful frames (generate then keeps none); the pooled one
    flags about 1/(7+1) of them, as many as when the validation patient is typical, and every copy."""
    rates: dict[str, list[float]] = {k: [] for k in ("val_out", "pooled_out", "pooled_typical", "val_typical", "pooled_copy", "val_copy")}
    for seed in range(40):
        rng = np.random.default_rng(seed)
        train, patients = _patients(rng, 6, 10, 100.0)
        outlier, _ = _patients(rng, 1, 10, 160.0)
        typical, _ = _patients(rng, 1, 10, 100.0)
        faithful, _ = _patients(rng, 20, 10, 100.0)
        copies = np.clip(train[rng.integers(0, len(train), 200)] + rng.normal(0, 1.0, (200, 8, 8)), 0, 255).astype(np.uint8)
        for name, policy in (("val", NearCopyPolicy(reference="validation")), ("pooled", NearCopyPolicy())):
            out = policy.fit(train, outlier, patients)
            rates[f"{name}_out"].append(float(out.mask(faithful)[0].mean()))
            rates[f"{name}_copy"].append(float(out.mask(copies)[0].mean()))
            rates[f"{name}_typical"].append(float(policy.fit(train, typical, patients).mask(faithful)[0].mean()))
    mean = {k: float(np.mean(v)) for k, v in rates.items()}
    assert mean["val_out"] > 0.95  # the failure: one outlying patient sets the cut-off above every training distance
    assert mean["pooled_out"] < 0.2 and mean["pooled_typical"] < 0.2  # about 1/8
    assert abs(mean["pooled_out"] - mean["pooled_typical"]) < 0.05  # the outlier no longer matters
    assert mean["pooled_typical"] < mean["val_typical"]  # one typical validation patient alone flags more (about 1/2 at worst)
    assert min(rates["pooled_copy"]) > 0.99 and min(rates["val_copy"]) > 0.99  # copies are flagged either way
