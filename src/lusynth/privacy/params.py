"""Parameters of the privacy audit (the profile section ``audit``; defaults = the demo profile).

The limits are what a release may show at most; the gate (:func:`lusynth.privacy.gate.decide`)
compares confidence bounds with them, never point estimates. Every limit is documented in the
model card (:mod:`lusynth.registry.cards`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lusynth.params import check

__all__ = ["FEATURE_CHOICES", "AuditParams"]

FEATURE_CHOICES = ("pixels", "spectrum", "embedding")


@dataclass(frozen=True)
class AuditParams:
    """Privacy audit of a synthetic set: what is measured, the limits of the gate, the resampling."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    # near-copy cut-off: this percentile of the calibration (val) patients' distance ratio (closest
    # training frame / closest frame of another training patient); a generator that copies nothing
    # produces at most about this share of near-copies
    percentile: float = 1.0
    # ... times this margin: with a handful of calibration patients their closest one says little
    # about the closest unseen patient in general, so a copy must be clearly closer than that
    copy_margin: float = 0.5
    # limit on the share of unfiltered synthetic frames that are near-copies (Clopper-Pearson bounds);
    # a generator that copies nothing shows far less than the percentile (benchmarks/bench_audit.py)
    max_copy_rate: float = 0.05
    # limit on each patient-level membership-inference AUC (distance, reference, discriminator)
    max_mia_auc: float = 0.6
    ci: float = 0.95  # confidence level of every interval; FAIL bounds are Bonferroni-adjusted over the checks
    # spaces of the near-copy test (a frame is a copy in any): pixels, spectrum (shift/contrast
    # tolerant), embedding (trained on the training frames only; lusynth.privacy.features)
    features: tuple[str, ...] = ("pixels", "spectrum")
    max_synthetic_frames: int = 2000  # synthetic frames per class the audit reads (a random subset beyond)
    n_permutations: int = 2000  # patient relabellings of each permutation p-value
    n_bootstrap: int = 1000  # stratified patient bootstrap resamples of each AUC interval
    embedding_epochs: int = 6  # epochs of the audit's embedding (trained on the training patients' frames only)
    seed: int = 0  # subsampling, permutation and bootstrap seed

    def __post_init__(self) -> None:
        a = "audit"
        check(0 < self.percentile < 100, a, "percentile", self.percentile, "a percentile in (0, 100), e.g. 1.0")
        check(0 < self.copy_margin <= 1, a, "copy_margin", self.copy_margin, "a factor in (0, 1], e.g. 0.5")
        check(0 < self.max_copy_rate < 1, a, "max_copy_rate", self.max_copy_rate, "a share in (0, 1), e.g. 0.05")
        check(0.5 < self.max_mia_auc <= 1, a, "max_mia_auc", self.max_mia_auc, "an AUC in (0.5, 1], e.g. 0.6")
        check(0.5 <= self.ci < 1, a, "ci", self.ci, "a confidence level in [0.5, 1), e.g. 0.95")
        feats = tuple(self.features)
        check(bool(feats) and all(f in FEATURE_CHOICES for f in feats) and len(set(feats)) == len(feats), a, "features",
              self.features, f"one or more of {', '.join(FEATURE_CHOICES)}, e.g. pixels,spectrum")
        object.__setattr__(self, "features", feats)
        check(self.max_synthetic_frames >= 10, a, "max_synthetic_frames", self.max_synthetic_frames, "must be >= 10")
        check(self.n_permutations >= 99, a, "n_permutations", self.n_permutations, "use at least 99 (2000 for reporting)")
        check(self.n_bootstrap >= 99, a, "n_bootstrap", self.n_bootstrap, "use at least 99 (1000 for reporting)")
        check(self.embedding_epochs >= 1, a, "embedding_epochs", self.embedding_epochs, "must be >= 1")
        check(isinstance(self.seed, int) and self.seed >= 0, a, "seed", self.seed, "an integer >= 0")
