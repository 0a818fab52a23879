"""The privacy gate on evidence: a decision from confidence bounds, never from point estimates.

Each check has a limit (what a release may show at most) and an interval for the audited value:

- **pass** when every check's upper bound (at the audit's level ``ci``) is below its limit. This
  is an intersection-union test: a generator whose true value is over any one limit passes with
  probability at most ``(1 - ci) / 2``, whatever the number of checks, so no adjustment is needed;
- **fail** when any check's lower bound is above its limit. Several checks could each fail by
  chance, so these lower bounds are Bonferroni-adjusted (level ``1 - (1 - ci) / k`` for ``k``
  checks): a generator under every limit fails with probability at most ``(1 - ci) / 2``;
- otherwise **insufficient_evidence**, with what each undecided check would need (patients or
  synthetic frames) for its upper bound to clear the limit if the generator leaked nothing.

Pure: dicts in, dict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FAIL", "INSUFFICIENT", "PASS", "Check", "decide"]

PASS = "pass"
FAIL = "fail"
INSUFFICIENT = "insufficient_evidence"


@dataclass(frozen=True)
class Check:
    """One gated figure: its estimate, limit, bounds at ``ci`` and the Bonferroni-adjusted lower bound."""

    name: str
    value: float
    limit: float
    lo: float  # lower bound at the audit's level
    hi: float  # upper bound at the audit's level (PASS side)
    lo_adjusted: float  # lower bound at the Bonferroni-adjusted level (FAIL side)
    unit: str  # what the sample size counts: "patients" or "synthetic frames"
    n: int  # the sample size now
    needed: int  # the sample size at which a generator that leaks nothing would clear the limit
    p_value: float | None = None  # an exact test of "no leakage" (patient permutation), where one exists
    fail_alpha: float = 1.0  # FAIL also needs p_value <= fail_alpha (the Bonferroni-adjusted one-sided level)

    @property
    def outcome(self) -> str:
        """pass / fail / insufficient_evidence for this check alone."""
        if self.lo_adjusted > self.limit and (self.p_value is None or self.p_value <= self.fail_alpha):
            return FAIL
        if self.hi < self.limit:
            return PASS
        return INSUFFICIENT

    def as_dict(self) -> dict[str, Any]:
        """The check as plain data with its outcome (for audit.json)."""
        return asdict(self) | {"outcome": self.outcome}


def decide(checks: Sequence[Check]) -> dict[str, Any]:
    """The gate's decision over ``checks`` and one reason line per check that is not a pass."""
    if not checks:
        raise ValueError("privacy gate: no checks to decide on")
    outcomes = [c.outcome for c in checks]
    decision = FAIL if FAIL in outcomes else PASS if all(o == PASS for o in outcomes) else INSUFFICIENT
    reasons = []
    for c in checks:
        if c.outcome == FAIL:
            reasons.append(f"{c.name}: adjusted lower bound {c.lo_adjusted:.3g} > limit {c.limit:.3g} (estimate {c.value:.3g})")
        elif c.outcome == INSUFFICIENT:
            settle = f"about {c.needed} {c.unit} (now {c.n}) would settle it if the generator leaks nothing"
            if c.lo_adjusted > c.limit:  # over the limit by the bound, but the exact test cannot reject "no leakage"
                reasons.append(f"{c.name}: adjusted lower bound {c.lo_adjusted:.3g} > limit {c.limit:.3g}, but the patient permutation "
                               f"test does not reject no leakage (p = {c.p_value:.3g} > {c.fail_alpha:.3g}): too few patients "
                               f"to fail it; {settle}")
            else:
                reasons.append(f"{c.name}: interval [{c.lo:.3g}, {c.hi:.3g}] contains the limit {c.limit:.3g}; {settle}")
    return {"decision": decision, "reasons": reasons, "checks": [c.as_dict() for c in checks]}
