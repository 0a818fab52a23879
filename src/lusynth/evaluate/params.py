"""Parameters of ``evaluate`` (defaults = the ``demo`` profile).

The privacy-gate thresholds default to those of :class:`lusynth.metrics.privacy.PrivacyGate`
(memorisation rate <= 0.02, distance and discriminator membership-inference AUC <= 0.6, median
synthetic DCR >= 0.8 x median holdout DCR); set one to ``null`` in a profile to disable it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lusynth.metrics.privacy import PrivacyGate
from lusynth.params import check, check_choices

LEVELS = ("frame", "clip", "patient")
THRESHOLDS = ("0.5", "val")


@dataclass(frozen=True)
class EvaluateParams:
    """Holdout evaluation, seed aggregation, fidelity and privacy audit settings."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"table_level": LEVELS, "table_threshold": THRESHOLDS}

    n_bootstrap: int = 1000  # patient-level bootstrap resamples for every CI
    ci: float = 0.95  # confidence level of the intervals
    seed: int = 0  # bootstrap and subsampling seed (same for every classifier: paired resamples)
    table_level: str = "frame"  # level of the paper's table: frame, clip or patient
    table_threshold: str = "val"  # threshold of accuracy/F1 in the table: '0.5' or 'val' (validation-chosen)
    audit_max_frames: int = 2000  # frames per side (synthetic, real) in fidelity/privacy metrics
    kid_subsets: int = 10
    kid_subset_size: int = 1000  # lowered to the smaller side when fewer frames exist
    gate_max_memorisation_rate: float | None = PrivacyGate.max_memorisation_rate
    gate_max_distance_mia_auc: float | None = PrivacyGate.max_distance_mia_auc
    gate_max_discriminator_mia_auc: float | None = PrivacyGate.max_discriminator_mia_auc
    gate_min_dcr_ratio: float | None = PrivacyGate.min_dcr_ratio
    grid_frames: int = 16  # frames per side in the report's real-vs-synthetic sample grids
    batch_size: int = 256  # inference batch

    def __post_init__(self) -> None:
        e = "evaluate"
        check(self.n_bootstrap >= 10, e, "n_bootstrap", self.n_bootstrap, "use at least 10 resamples (1000 for reporting)")
        check(0.5 <= self.ci < 1, e, "ci", self.ci, "a confidence level in [0.5, 1), e.g. 0.95")
        check(self.audit_max_frames >= 10, e, "audit_max_frames", self.audit_max_frames, "need at least 10 frames per side")
        check(self.kid_subsets >= 1, e, "kid_subsets", self.kid_subsets, "must be >= 1")
        check(self.kid_subset_size >= 2, e, "kid_subset_size", self.kid_subset_size, "must be >= 2")
        check(self.grid_frames >= 1, e, "grid_frames", self.grid_frames, "must be >= 1")
        check(self.batch_size >= 1, e, "batch_size", self.batch_size, "must be >= 1")
        check_choices(self, e)

    def gate(self) -> PrivacyGate:
        """The privacy release gate with these thresholds."""
        return PrivacyGate(
            max_memorisation_rate=self.gate_max_memorisation_rate,
            max_distance_mia_auc=self.gate_max_distance_mia_auc,
            max_discriminator_mia_auc=self.gate_max_discriminator_mia_auc,
            min_dcr_ratio=self.gate_min_dcr_ratio,
        )
