"""The checkpoint selection rule (the paper picked the GAN epoch by eye).

Rule (``selection='nn1_embed'`` or ``'nn1_pixels'``): among the evaluated checkpoints after
training started (epoch >= 1) whose memorisation rate is at most ``max_memorisation_rate``,
choose the one whose leave-one-out 1-NN accuracy against the validation frames in that feature
space is closest to 0.5; ties go to the lower kernel MMD^2 in the same space (``mmd_embed`` /
``mmd_pixels``), then to the later step. If none passes the memorisation check, the
one with the lowest memorisation rate is chosen and the result says so (``eligible: False``).
``selection='mmd_embed'`` or ``'mmd_pixels'``: the same eligibility, the lowest MMD^2 in that
space (ties to the later step). ``selection='last'`` takes the last evaluation.

Which rule: ``benchmarks/bench_selection.py`` replays every rule over the fidelity histories of
``bench_generators.py`` and scores each choice on the fold's *test* patients (never seen by any
rule). No rule beat the default consistently, and the best possible eligible choice was on average
0.003-0.082 test-patient MMD^2 better (per study and store): on few patients, the memorisation
guard, not the rule, bounds what selection can reach on POCUS (benchmarks/results/README.md, "Checkpoint selection").

Why the MMD tie-break matters: frame-level leave-one-out 1-NN saturates at 1.0 when the real
frames come in tight clusters (frames of one clip, clips of one patient). On the phantom even
real *training* frames against real validation frames score 1.0 in both feature spaces
(measured), so every checkpoint ties on 1-NN and MMD, which keeps falling as G improves, decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["choose", "score"]


def score(entry: dict[str, Any], rule: str) -> tuple[float, float]:
    """Lower is better: (|1-NN accuracy - 0.5|, MMD^2) in the rule's feature space; (MMD^2, 0)
    for an ``mmd_*`` rule."""
    if rule.startswith("mmd_"):
        return (float(entry[rule]), 0.0)
    mmd = float(entry.get(rule.replace("nn1_", "mmd_"), 0.0))
    return (abs(float(entry[rule]) - 0.5), mmd)


def choose(history: Sequence[dict[str, Any]], *, rule: str, max_memorisation_rate: float) -> dict[str, Any]:
    """The chosen evaluation and why: ``{"entry", "rule", "eligible", "reason", "candidates"}``."""
    candidates = [h for h in history if int(h["epoch"]) >= 1]
    if not candidates:
        raise ValueError("no evaluation after training started; train at least one epoch")
    if rule == "last":
        best = max(candidates, key=lambda h: int(h["step"]))
        return {"entry": best, "rule": rule, "eligible": True, "reason": "last evaluation", "candidates": len(candidates)}
    eligible = [h for h in candidates if float(h["memorisation_rate"]) <= max_memorisation_rate]
    if eligible:
        best = min(eligible, key=lambda h: (score(h, rule), -int(h["step"])))
        first, tie = score(best, rule)
        measure = f"{rule} = {first:.4f}" if rule.startswith("mmd_") else f"|{rule} - 0.5| = {first:.4f} (MMD^2 {tie:.4f})"
        reason = f"{measure}, smallest among {len(eligible)} checkpoints with memorisation_rate <= {max_memorisation_rate}"
        return {"entry": best, "rule": rule, "eligible": True, "reason": reason, "candidates": len(candidates)}
    best = min(candidates, key=lambda h: (float(h["memorisation_rate"]), score(h, rule), -int(h["step"])))
    reason = (
        f"no checkpoint has memorisation_rate <= {max_memorisation_rate}; chose the lowest "
        f"({float(best['memorisation_rate']):.4f}). Generation's privacy filter still drops near-copies."
    )
    return {"entry": best, "rule": rule, "eligible": False, "reason": reason, "candidates": len(candidates)}
