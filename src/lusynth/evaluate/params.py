"""Parameters of ``evaluate`` (defaults = the ``demo`` profile).

The privacy-gate thresholds default to those of :class:`lusynth.metrics.privacy.PrivacyGate`
(memorisation rate <= 0.02, distance and discriminator membership-inference AUC <= 0.6, median
synthetic DCR >= 0.8 x median holdout DCR); set one to ``null`` in a profile to disable it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from lusynth.metrics.privacy import PrivacyGate
from lusynth.params import check, check_choices

if TYPE_CHECKING:  # the statistics load scikit-learn: not needed to read these parameters
    from lusynth.stats.questions import AnalysisParams

LEVELS = ("frame", "patient")
THRESHOLDS = ("0.5", "val")
METRIC_NAMES = ("auc", "accuracy", "f1", "sensitivity", "specificity")


@dataclass(frozen=True)
class EvaluateParams:
    """Holdout evaluation, seed aggregation, fidelity and privacy audit settings."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"primary_metric": METRIC_NAMES}

    n_bootstrap: int = 1000  # class-stratified patient bootstrap resamples for every CI
    ci: float = 0.95  # confidence level of the intervals (verdicts are one-sided tests at (1 - ci) / 2)
    seed: int = 0  # bootstrap and subsampling seed (same resamples for every arm of a split: paired)
    primary_metric: str = "auc"  # pre-specified primary endpoint of both questions (patient level)
    secondary_metrics: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "f1")  # secondary endpoints (Holm-adjusted)
    primary_fraction: float | None = None  # training fraction of the primary test; null = the smallest (scarce real data)
    margin: float = 0.05  # non-inferiority margin of question (b), in units of the primary metric (0.05 AUC)
    power: float = 0.8  # power at which an inconclusive verdict states the minimum detectable difference
    min_patients_per_class: int = 5  # fewer test patients of a class label every interval 'too few patients' (no verdict)
    baseline_arm: str = "real"  # the arm both questions compare with
    audit_max_frames: int = 2000  # frames per side (synthetic, real) in fidelity/privacy metrics
    kid_subsets: int = 10
    kid_subset_size: int = 1000  # lowered to the smaller side when fewer frames exist
    gate_max_memorisation_rate: float | None = PrivacyGate.max_memorisation_rate
    gate_max_distance_mia_auc: float | None = PrivacyGate.max_distance_mia_auc
    gate_max_discriminator_mia_auc: float | None = PrivacyGate.max_discriminator_mia_auc
    gate_min_dcr_ratio: float | None = PrivacyGate.min_dcr_ratio
    fidelity_permutations: int = 200  # group permutations of the per-patient MMD test (p-value resolution 1/(n+1))
    fidelity_max_rows: int = 500  # frames per side in the MMD permutation test (cost grows with its square)
    grid_frames: int = 16  # frames per side in the report's real-vs-synthetic sample grids
    batch_size: int = 256  # inference batch

    def __post_init__(self) -> None:
        e = "evaluate"
        check(self.n_bootstrap >= 10, e, "n_bootstrap", self.n_bootstrap, "use at least 10 resamples (1000 for reporting)")
        check(0.5 <= self.ci < 1, e, "ci", self.ci, "a confidence level in [0.5, 1), e.g. 0.95")
        check(self.audit_max_frames >= 10, e, "audit_max_frames", self.audit_max_frames, "need at least 10 frames per side")
        check(self.kid_subsets >= 1, e, "kid_subsets", self.kid_subsets, "must be >= 1")
        check(self.kid_subset_size >= 2, e, "kid_subset_size", self.kid_subset_size, "must be >= 2")
        check(self.fidelity_permutations >= 1, e, "fidelity_permutations", self.fidelity_permutations, "must be >= 1 (199 for reporting)")
        check(self.fidelity_max_rows >= 4, e, "fidelity_max_rows", self.fidelity_max_rows, "must be >= 4")
        check(self.grid_frames >= 1, e, "grid_frames", self.grid_frames, "must be >= 1")
        check(self.batch_size >= 1, e, "batch_size", self.batch_size, "must be >= 1")
        bad = [m for m in self.secondary_metrics if m not in METRIC_NAMES]
        check(not bad, e, "secondary_metrics", self.secondary_metrics, f"choose from {', '.join(METRIC_NAMES)}")
        check(0 <= self.margin < 1, e, "margin", self.margin, "a difference in [0, 1), e.g. 0.05 AUC")
        check(0 < self.power < 1, e, "power", self.power, "a probability, e.g. 0.8")
        check(self.min_patients_per_class >= 1, e, "min_patients_per_class", self.min_patients_per_class, "must be >= 1")
        check(self.primary_fraction is None or 0 < self.primary_fraction <= 1, e, "primary_fraction", self.primary_fraction,
              "a training fraction of the grid, or null for the smallest")
        check_choices(self, e)

    def analysis(self) -> AnalysisParams:
        """The statistics' pre-specification (:mod:`lusynth.stats`)."""
        from lusynth.stats.questions import AnalysisParams

        return AnalysisParams(primary_metric=self.primary_metric, secondary_metrics=tuple(self.secondary_metrics), margin=self.margin,
                              level=self.ci, power=self.power, n_resamples=self.n_bootstrap, seed=self.seed,
                              min_patients_per_class=self.min_patients_per_class, primary_fraction=self.primary_fraction,
                              baseline=self.baseline_arm)

    def gate(self) -> PrivacyGate:
        """The privacy release gate with these thresholds."""
        return PrivacyGate(
            max_memorisation_rate=self.gate_max_memorisation_rate,
            max_distance_mia_auc=self.gate_max_distance_mia_auc,
            max_discriminator_mia_auc=self.gate_max_discriminator_mia_auc,
            min_dcr_ratio=self.gate_min_dcr_ratio,
        )
