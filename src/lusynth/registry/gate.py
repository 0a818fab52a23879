"""The promotion gate, pure: which classifier a run nominates and what the registry should say about it.

The pipeline never makes a model ``champion``: that is a reviewer's decision (``lusynth registry
approve``, :mod:`.review`). A pipeline run nominates one classifier -- the best validation AUC
over its arms (validation, not holdout, so the holdout stays untouched by the choice) -- and the
gate (:func:`promotion_decision`, :data:`RULE`) gives it:

- ``candidate`` (alias ``@candidate``: ready for review) when there is no champion yet, or its
  holdout AUC lower 95 % bound is not worse than the champion's holdout AUC point estimate minus
  the non-inferiority margin (default 0.02), ``new.lo >= champion.value - margin``, **and**, if it
  was trained on any synthetic data, the privacy audit of every synthetic store it used passed;
- ``challenger`` (alias ``@challenger``) when only the comparison with the champion fails (not
  shown non-inferior, or no holdout CI): kept beside the champion, not recommended;
- ``ineligible`` (no alias) when it used synthetic data whose privacy audit failed or is missing:
  it can never become champion.

The other arms' versions are ``not-nominated`` (no gate alias; each keeps ``arm-<arm>``).
Generators: ``candidate`` when their privacy audit passed, ``challenger`` when it was undecided or
missing, ``ineligible`` (no alias) when it failed. Nothing here talks to MLflow or reads a file:
:mod:`.client` applies these decisions to the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.keys import family_tag
from lusynth.util import slugify

__all__ = [
    "CANDIDATE",
    "CHALLENGER",
    "CHAMPION",
    "GATE_ALIASES",
    "INELIGIBLE",
    "NOT_NOMINATED",
    "RULE",
    "DEFAULT_CLASSIFIER_MODEL",
    "DEFAULT_GENERATOR_PREFIX",
    "NON_INFERIORITY_MARGIN",
    "AUCEstimate",
    "ClassifierCandidate",
    "GateDecision",
    "RegistryNames",
    "best_per_arm",
    "nominate",
    "promotion_decision",
]

DEFAULT_CLASSIFIER_MODEL = "lusynth-lus-classifier"
DEFAULT_GENERATOR_PREFIX = "lusynth-lus-generator-"
CHAMPION = "champion"  # set by a reviewer only (lusynth registry approve)
CANDIDATE = "candidate"  # the gate recommends it: awaiting review
CHALLENGER = "challenger"  # privacy-clean nominee not shown non-inferior to the champion
INELIGIBLE = "ineligible"  # synthetic data without a passed privacy audit: never champion, no alias
NOT_NOMINATED = "not-nominated"  # another arm of the run was nominated
GATE_ALIASES = (CANDIDATE, CHALLENGER)  # the decisions that become an alias of the same name
NON_INFERIORITY_MARGIN = 0.02
#: the rule as model cards and ``lusynth registry show`` print it
RULE = ("The pipeline never sets champion; a reviewer does (`lusynth registry approve`). The run's nominee (best validation "
        "AUC over arms) is `candidate` if there is no champion or its holdout AUC lower bound >= champion AUC - margin "
        "({margin:g}), and the privacy audit passed for any synthetic data it used; `challenger` if only the comparison "
        "with the champion fails; `ineligible` (no alias, never champion) if its synthetic data's privacy audit failed or "
        "is missing. Other arms: `not-nominated`.")


@dataclass(frozen=True)
class RegistryNames:
    """Registered model names (configurable per deployment)."""

    classifier: str = DEFAULT_CLASSIFIER_MODEL
    generator_prefix: str = DEFAULT_GENERATOR_PREFIX

    def generator(self, label: str, family: str = "dcgan") -> str:
        """Model name of ``label``'s generator of ``family`` (non-name characters become '-'): the
        paper's DCGAN keeps the name it always had, another family's name says the family."""
        return self.generator_prefix + family_tag(family, "", after="-") + slugify(label, keep="A-Za-z0-9_.-")


@dataclass(frozen=True)
class AUCEstimate:
    """Holdout ROC AUC with its (patient-level bootstrap) confidence interval."""

    value: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


@dataclass(frozen=True)
class GateDecision:
    """``candidate`` / ``challenger`` / ``ineligible`` / ``not-nominated`` and why."""

    decision: str
    reason: str
    champion_version: str | None = None


def promotion_decision(
    new: AUCEstimate | None,
    champion: AUCEstimate | None,
    *,
    uses_synthetic: bool,
    privacy_passed: bool | None,
    margin: float = NON_INFERIORITY_MARGIN,
    champion_version: str | None = None,
) -> GateDecision:
    """The promotion rule of the module docstring (pure): never ``champion``, which only a reviewer sets."""
    if not uses_synthetic:
        privacy = "no synthetic training data: privacy gate not needed"
    elif privacy_passed:
        privacy = "privacy gate passed for its synthetic data"
    else:
        # False = the audit did not pass: it failed, or its evidence was insufficient either way
        why = "did not pass (failed or undecided)" if privacy_passed is False else "has no audit"
        return GateDecision(INELIGIBLE, f"trained on synthetic data whose privacy gate {why}: never champion",
                            champion_version)
    if new is None or not all(math.isfinite(v) for v in (new.value, new.lo)):
        return GateDecision(CHALLENGER, "no holdout AUC with a CI (run `lusynth evaluate` and pass --evaluation)",
                            champion_version)
    if champion is None:
        return GateDecision(CANDIDATE, f"no current champion; holdout AUC {new}; {privacy}; awaiting review", None)
    bar = champion.value - margin
    if new.lo >= bar:
        return GateDecision(CANDIDATE, f"holdout AUC {new}: lower bound {new.lo:.3f} >= champion v{champion_version} AUC "
                                       f"{champion.value:.3f} - margin {margin:g} = {bar:.3f} (non-inferior); {privacy}; "
                                       "awaiting review", champion_version)
    return GateDecision(CHALLENGER, f"holdout AUC {new}: lower bound {new.lo:.3f} < champion v{champion_version} AUC "
                                    f"{champion.value:.3f} - margin {margin:g} = {bar:.3f} (not shown non-inferior)",
                        champion_version)


@dataclass
class ClassifierCandidate:
    """One trained classifier with what the gate and the model card need."""

    classifier_dir: Path
    arm: str
    fraction: float
    seed: int
    val_auc: float
    data_digest: str
    synthetic_digests: list[str] = field(default_factory=list)
    holdout: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {value, lo, hi}, frame level
    holdout_patient: dict[str, dict[str, float]] = field(default_factory=dict)
    privacy_passed: bool | None = None  # None: no synthetic data, or no evaluation given
    privacy_reasons: list[str] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    n_holdout_frames: int | None = None
    n_holdout_patients: int | None = None
    ci: float = 0.95
    threshold: float = 0.5
    classes: list[str] = field(default_factory=list)
    image_size: int = 0
    training_run_id: str | None = None  # the MLflow run that trained it: the registered version's source run

    @property
    def uses_synthetic(self) -> bool:
        """Whether synthetic frames trained it (real+aug is classical augmentation of real frames only)."""
        from lusynth.classifier.params import SYNTHETIC_ARMS

        return self.arm in SYNTHETIC_ARMS or bool(self.synthetic_digests)

    @property
    def privacy_eligible(self) -> bool:
        """Whether the privacy rule lets it be champion at all: no synthetic data, or data whose audit passed."""
        return not self.uses_synthetic or self.privacy_passed is True

    @property
    def holdout_auc(self) -> AUCEstimate | None:
        a = self.holdout.get("auc")
        return AUCEstimate(float(a["value"]), float(a["lo"]), float(a["hi"])) if a else None


def best_per_arm(candidates: Sequence[ClassifierCandidate]) -> dict[str, ClassifierCandidate]:
    """The best classifier of each arm by validation AUC (ties: larger fraction, lower seed)."""
    out: dict[str, ClassifierCandidate] = {}
    for c in candidates:
        key = (_finite(c.val_auc), c.fraction, -c.seed)
        cur = out.get(c.arm)
        if cur is None or key > (_finite(cur.val_auc), cur.fraction, -cur.seed):
            out[c.arm] = c
    return dict(sorted(out.items()))


def nominate(best: Mapping[str, ClassifierCandidate]) -> str:
    """The arm a run nominates for the gate: the highest validation AUC among the arms the privacy
    rule allows (ties: ``real``); an arm whose synthetic data did not pass its audit is nominated
    only when no arm is allowed (it is then ``ineligible``)."""
    return max(best.values(), key=lambda c: (c.privacy_eligible, _finite(c.val_auc), c.arm == "real")).arm


def _finite(x: float) -> float:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else float("-inf")
