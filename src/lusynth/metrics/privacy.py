"""Privacy of synthetic frames: are any of them (near-)copies of the patients the GAN trained on?

The reference for "close" is always real held-out data: a synthetic frame is suspicious only if
it is closer to a training frame than fresh frames of other patients typically are. That makes
the thresholds independent of the feature space and the image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lusynth.metrics.distances import nearest_neighbor_distances

__all__ = [
    "AUDIT_KEYS",
    "PrivacyGate",
    "distance_attack_scores",
    "distance_to_closest_record",
    "membership_inference_auc",
    "memorisation_rate",
    "near_copy_mask",
    "near_copy_threshold",
    "privacy_audit",
]

# The keys PrivacyGate.check reads; privacy_audit fills all but the discriminator attack, which
# needs the GAN's discriminator and is computed by the caller.
AUDIT_KEYS = (
    "memorisation_rate",
    "distance_mia_auc",
    "discriminator_mia_auc",
    "median_dcr_synthetic",
    "median_dcr_holdout",
)


def _check_scores(values: np.ndarray, *, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def distance_to_closest_record(samples: np.ndarray, train: np.ndarray, *, block: int = 2048) -> np.ndarray:
    """Euclidean distance from each sample to its nearest training frame (DCR), shape (n,).

    A copied training frame has DCR 0; on its own the number means little, so compare it with
    the DCR of real holdout frames (:func:`near_copy_threshold`, :func:`memorisation_rate`).
    """
    return nearest_neighbor_distances(samples, train, k=1, block=block)[0][:, 0]


def near_copy_threshold(holdout_dcr: np.ndarray, *, percentile: float = 1.0) -> float:
    """The ``percentile``-th percentile (0-100) of holdout -> train DCR: the near-copy cut-off.

    Only ``percentile`` % of unseen real frames are that close to a training frame, so a synthetic
    frame below it is closer to the training set than real data from other patients usually is.
    """
    dcr = _check_scores(holdout_dcr, name="holdout_dcr")
    if np.any(dcr < 0):
        raise ValueError("holdout_dcr: distances must be >= 0")
    if not (0.0 <= percentile <= 100.0):
        raise ValueError(f"percentile: expected a value in [0, 100] (1.0 = 1st percentile), got {percentile!r}")
    return float(np.percentile(dcr, percentile))


def near_copy_mask(samples_dcr: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask (n,), True where a sample is a near-copy (``dcr < threshold``): frames to drop.

    Strict ``<``: with a threshold of 0 (holdout frames duplicated in train -- a split leak to fix
    first) nothing is flagged rather than everything.
    """
    dcr = _check_scores(samples_dcr, name="samples_dcr")
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold: expected a finite distance >= 0, got {threshold!r}")
    return dcr < threshold


def memorisation_rate(
    synthetic_dcr: np.ndarray, holdout_dcr: np.ndarray, *, percentile: float = 1.0
) -> float:
    """Share of synthetic frames closer to training than the ``percentile``-th holdout DCR.

    A generator that copies no more than fresh patients resemble training data scores about
    ``percentile / 100`` (0.01 by default); the excess over that is memorisation.
    """
    threshold = near_copy_threshold(holdout_dcr, percentile=percentile)
    return float(near_copy_mask(synthetic_dcr, threshold).mean())


def membership_inference_auc(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, higher_means_member: bool = True
) -> float:
    """ROC AUC of a membership-inference attack score: 0.5 = no leakage, 1.0 = members revealed.

    The AUC is the chance that a random training frame outscores a random unseen one, so it is
    threshold-free and insensitive to how many candidates of each kind were scored.
    """
    members = _check_scores(member_scores, name="member_scores").astype(np.float64)
    nonmembers = _check_scores(nonmember_scores, name="nonmember_scores").astype(np.float64)
    labels = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    scores = np.concatenate([members, nonmembers])
    # imported here: every train-gan and generate task imports this module (the near-copy rule) but
    # computes no AUC, and sklearn.metrics costs 0.8 s of each such task's start
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores if higher_means_member else -scores))


def distance_attack_scores(candidates: np.ndarray, synthetic: np.ndarray, *, block: int = 2048) -> np.ndarray:
    """Distance-based membership attack (GAN-Leaks, Chen et al. 2020; Hilprecht et al. 2019).

    Score = minus the distance from each candidate to its nearest synthetic frame: a generator
    that memorised a patient reproduces frames close to that patient's training frames, so
    higher scores mean "more likely a member". Feed to :func:`membership_inference_auc`.
    """
    return -nearest_neighbor_distances(candidates, synthetic, k=1, block=block)[0][:, 0]


def privacy_audit(
    synthetic: np.ndarray,
    train: np.ndarray,
    holdout: np.ndarray,
    *,
    percentile: float = 1.0,
    block: int = 2048,
) -> dict[str, float]:
    """The distance-based entries of :data:`AUDIT_KEYS` (all but ``discriminator_mia_auc``).

    ``train`` are the GAN's training frames (members), ``holdout`` real frames of other patients
    (non-members); subsample ``train`` to the size of ``holdout`` to keep the attack balanced.
    """
    synthetic_dcr = distance_to_closest_record(synthetic, train, block=block)
    holdout_dcr = distance_to_closest_record(holdout, train, block=block)
    auc = membership_inference_auc(
        distance_attack_scores(train, synthetic, block=block),
        distance_attack_scores(holdout, synthetic, block=block),
    )
    return {
        "memorisation_rate": memorisation_rate(synthetic_dcr, holdout_dcr, percentile=percentile),
        "distance_mia_auc": auc,
        "median_dcr_synthetic": float(np.median(synthetic_dcr)),
        "median_dcr_holdout": float(np.median(holdout_dcr)),
    }


@dataclass(frozen=True)
class PrivacyGate:
    """Release gate for a synthetic set; a threshold of ``None`` disables that check.

    Defaults: memorisation rate <= 0.02 (twice the 0.01 expected of fresh real data at the 1st
    percentile), distance and discriminator MIA AUC <= 0.6 (a weak attack at best), and median
    synthetic DCR >= 0.8 x median holdout DCR (synthetic frames not systematically closer to the
    training patients than unseen patients are). A metric the gate needs but the audit lacks fails.
    """

    max_memorisation_rate: float | None = 0.02
    max_distance_mia_auc: float | None = 0.6
    max_discriminator_mia_auc: float | None = 0.6
    min_dcr_ratio: float | None = 0.8

    def __post_init__(self) -> None:
        for name, low, high in (
            ("max_memorisation_rate", 0.0, 1.0),
            ("max_distance_mia_auc", 0.5, 1.0),
            ("max_discriminator_mia_auc", 0.5, 1.0),
            ("min_dcr_ratio", 0.0, math.inf),
        ):
            value = getattr(self, name)
            if value is not None and not (low <= value <= high):
                raise ValueError(f"PrivacyGate.{name}: expected a value in [{low}, {high}] or None, got {value!r}")

    def check(self, audit: dict[str, float]) -> tuple[bool, list[str]]:
        """(passed, reasons): each reason names the metric, its value and the threshold it broke."""
        reasons: list[str] = []

        def value(key: str) -> float | None:
            if key not in audit:
                reasons.append(f"{key} missing from the audit: compute it or disable its threshold")
                return None
            v = float(audit[key])
            if not math.isfinite(v):
                reasons.append(f"{key} = {v} is not a finite number")
                return None
            return v

        for key, limit in (
            ("memorisation_rate", self.max_memorisation_rate),
            ("distance_mia_auc", self.max_distance_mia_auc),
            ("discriminator_mia_auc", self.max_discriminator_mia_auc),
        ):
            if limit is None:
                continue
            v = value(key)
            if v is not None and v > limit:
                reasons.append(f"{key} = {v:.4g} > max {limit:.4g}")
        if self.min_dcr_ratio is not None:
            synthetic, holdout = value("median_dcr_synthetic"), value("median_dcr_holdout")
            if synthetic is not None and holdout is not None and synthetic < self.min_dcr_ratio * holdout:
                reasons.append(
                    f"median_dcr_synthetic = {synthetic:.4g} < min {self.min_dcr_ratio:.4g} x "
                    f"median_dcr_holdout (= {self.min_dcr_ratio * holdout:.4g})"
                )
        return not reasons, reasons
