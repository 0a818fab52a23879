"""The near-copy policy: when is a synthetic frame a (near-)copy of the generator's training data?

One rule, used by GAN checkpoint selection (its memorisation rate), by the privacy filter of
``generate`` and by the audit of ``evaluate``: a frame is a near-copy when its distance to the
closest training record (DCR) is below the ``percentile``-th percentile of the DCR of real frames
of patients the generator did not see (the *reference*). A generator that copies no more than
fresh patients resemble the training data flags about ``percentile`` % of its frames when the
reference frames are independent. Frames come clustered in patients, though: with k reference
patients the 1st percentile sits near the closest patient, and a generator that draws fresh
patients from the training population has about 1/(k+1) of its frames flagged (the simulation in
tests/metrics/test_nearcopy.py: 0.11-0.13 with 7 reference patients). The filter then tops up with
further latents; the privacy audit (:mod:`lusynth.privacy.core`) is where memorisation is decided.

Which unseen patients (``reference``):

- ``pooled`` (default): the inner validation patients' frames against the training frames, *and*
  each training patient's frames against the other training patients' frames (leave one patient
  out). Each of those is a patient the compared set did not contain. With one or two validation
  patients per class and fold (what 5-10 patients per class give), the validation-only reference
  is one patient's distance to the training set: a patient from another scanner or preset sits
  far from every training frame, its 1st percentile lands above the distances training patients
  have to one another, and every frame that looks like the training data counts as a near-copy
  (measured on ``shared/data/pocus`` fold 0, class abnormal: validation-only cut-off 18.7,
  training patients' own 1st percentile 8.3-15.2; generate then kept 0 of 4000 frames). The
  leave-one-patient-out distances are to a set one patient smaller, so slightly larger than a fresh
  patient's: the pooled cut-off errs towards flagging (tested in tests/metrics/test_nearcopy.py by
  simulation: a faithful generator's flag rate with an outlying validation patient, a copier's).
- ``validation``: the validation patients only (the rule before 2026-12-07).

Pure: arrays in, arrays and numbers out (the primitives are in :mod:`lusynth.metrics.privacy`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from lusynth.metrics.privacy import distance_to_closest_record, memorisation_rate, near_copy_mask, near_copy_threshold
from lusynth.params import check, check_choices

__all__ = ["FEATURE_SPACES", "NearCopyFilter", "NearCopyPolicy", "pixels"]


def pixels(frames: np.ndarray) -> np.ndarray:
    """uint8 (N,S,S) -> float32 (N, S*S) in [0, 1], the pixel feature space."""
    return np.asarray(frames, dtype=np.float32).reshape(len(frames), -1) / 255.0


#: feature spaces a DCR can be measured in: name -> uint8 frames (N,S,S) -> features (N, d)
FEATURE_SPACES = {"pixels": pixels}


@dataclass(frozen=True)
class NearCopyPolicy:
    """What counts as a near-copy; the profile section ``near_copy``."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"features": ("pixels",),  # the keys of FEATURE_SPACES
                                                     "reference": ("pooled", "validation")}

    # the cut-off: this percentile of the reference (unseen patients') DCR; 1.0 = the 1st percentile.
    # Open interval: 0 puts the cut-off at the single closest reference frame, 100 at the farthest
    # (almost every frame flagged: generate's filter could never keep enough).
    percentile: float = 1.0
    features: str = "pixels"  # space of the DCR (FEATURE_SPACES); pixels = frames flattened to [0, 1]
    # whose DCR is the reference: pooled = validation patients' and each training patient's against the other training patients'
    # frames (leave one patient out); validation = the validation patients' only (one outlying patient can flag everything)
    reference: str = "pooled"

    def __post_init__(self) -> None:
        p = self.percentile
        check(not isinstance(p, bool) and isinstance(p, numbers.Real) and 0 < p < 100, "near_copy", "percentile", p,
              "a percentile in (0, 100), e.g. 1.0 for the 1st percentile of unseen patients' DCR (--percentile, --set near_copy.percentile=...)")
        object.__setattr__(self, "percentile", float(p))
        check_choices(self, "near_copy")

    def to_features(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (N,S,S) in the policy's feature space (N, d)."""
        return FEATURE_SPACES[self.features](frames)

    def threshold(self, reference_dcr: np.ndarray) -> float:
        """The near-copy cut-off: the ``percentile``-th percentile of the reference DCR."""
        return near_copy_threshold(reference_dcr, percentile=self.percentile)

    def rate(self, dcr_synthetic: np.ndarray, reference_dcr: np.ndarray) -> float:
        """Share of synthetic frames that are near-copies (without memorisation: about ``percentile / 100``
        for independent reference frames, about 1/(k+1) for frames clustered in k reference patients)."""
        return memorisation_rate(dcr_synthetic, reference_dcr, percentile=self.percentile)

    def reference_dcr(self, train_frames: np.ndarray, reference_frames: np.ndarray, train_patients: np.ndarray | None) -> np.ndarray:
        """The DCRs of unseen patients the cut-off is taken from (see ``reference``): first the reference
        frames' (uint8, of patients the generator did not see) against the training frames, in their
        order, then with ``pooled`` each training patient's frames against the other training patients'
        (``train_patients``: the patient of each training frame; None or a single patient adds nothing)."""
        return self._reference_dcr(self.to_features(train_frames), self.to_features(reference_frames), train_patients)

    def _reference_dcr(self, train: np.ndarray, reference: np.ndarray, train_patients: np.ndarray | None) -> np.ndarray:
        dcr = [distance_to_closest_record(reference, train)]
        if self.reference == "pooled" and train_patients is not None:
            patients = np.asarray(train_patients).astype(str)
            if len(patients) != len(train):
                raise ValueError(f"train_patients: {len(patients)} patient ids for {len(train)} training frames")
            ids = np.unique(patients)
            if len(ids) > 1:
                dcr += [distance_to_closest_record(train[patients == p], train[patients != p]) for p in ids]
        return np.concatenate(dcr)

    def fit(self, train_frames: np.ndarray, reference_frames: np.ndarray, train_patients: np.ndarray | None = None) -> NearCopyFilter:
        """The filter for one class: training frames define closeness, the unseen patients' DCRs
        (:meth:`reference_dcr`) the cut-off."""
        train = self.to_features(train_frames)
        reference_dcr = self._reference_dcr(train, self.to_features(reference_frames), train_patients)
        return NearCopyFilter(policy=self, train=train, reference_dcr=reference_dcr, threshold=self.threshold(reference_dcr))


@dataclass(frozen=True)
class NearCopyFilter:
    """A :class:`NearCopyPolicy` fitted to one class's training and reference frames."""

    policy: NearCopyPolicy
    train: np.ndarray = field(repr=False)  # float32 (n, d): training frames in the policy's feature space
    reference_dcr: np.ndarray = field(repr=False)  # (m,): DCR of the reference frames
    threshold: float

    @property
    def percentile(self) -> float:
        return self.policy.percentile

    def dcr(self, frames: np.ndarray) -> np.ndarray:
        """Distance of each uint8 frame to its closest training frame, shape (n,)."""
        return distance_to_closest_record(self.policy.to_features(frames), self.train)

    def mask(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(near-copy boolean mask, DCR) for uint8 candidate frames: True = drop."""
        dcr = self.dcr(frames)
        return near_copy_mask(dcr, self.threshold), dcr
