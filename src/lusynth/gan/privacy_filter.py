"""The near-copy privacy filter (pure).

A synthetic frame is a near-copy when its distance to the closest training frame (DCR, pixels in
[0, 1]) is below the ``percentile``-th percentile of the same distance for real **holdout** frames
(other patients): closer to a training frame than almost any fresh real frame gets. Those frames
are dropped before release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lusynth.gan.evaluation import pixels
from lusynth.metrics.privacy import distance_to_closest_record, near_copy_mask, near_copy_threshold

__all__ = ["NearCopyFilter"]


@dataclass(frozen=True)
class NearCopyFilter:
    """Threshold fitted once per class; :meth:`mask` flags near-copies among candidates."""

    train: np.ndarray  # float32 (n, d) pixel features of the GAN's training frames
    threshold: float
    percentile: float

    @classmethod
    def fit(cls, train_frames: np.ndarray, holdout_frames: np.ndarray, *, percentile: float) -> NearCopyFilter:
        """From uint8 training and holdout frames (N,S,S) of one class."""
        train = pixels(train_frames)
        holdout_dcr = distance_to_closest_record(pixels(holdout_frames), train)
        return cls(train=train, threshold=float(near_copy_threshold(holdout_dcr, percentile=percentile)), percentile=percentile)

    def dcr(self, frames: np.ndarray) -> np.ndarray:
        """Distance of each uint8 frame to its closest training frame."""
        return distance_to_closest_record(pixels(frames), self.train)

    def mask(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(near_copy boolean mask, DCR) for uint8 candidate frames."""
        dcr = self.dcr(frames)
        return near_copy_mask(dcr, self.threshold), dcr
