"""The experiment grid: which GANs and which classifiers a run trains (pure).

The KFP pipeline fans out over :func:`plan_gans` and :func:`plan_classifiers`, DVC's matrix and
``lusynth run`` read the same :class:`ExperimentParams`, so the grid is defined once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lusynth.classifier.params import ARMS
from lusynth.errors import InputError
from lusynth.keys import Cell, GanKey, fraction
from lusynth.params import check

__all__ = ["ExperimentParams", "plan_classifiers", "plan_gans"]


@dataclass(frozen=True)
class ExperimentParams:
    """The grid of one run: nested training fractions x arms x classifier seeds."""

    fractions: tuple[float, ...] = (0.5, 1.0)  # nested training fractions of patients (one GAN per class and fraction)
    arms: tuple[str, ...] = ARMS  # classifier arms: real, real+synthetic, synthetic
    seeds: tuple[int, ...] = (0,)  # classifier seeds (one classifier per arm, fraction and seed)

    def __post_init__(self) -> None:
        x = "experiment"
        for name in ("fractions", "arms", "seeds"):
            check(len(getattr(self, name)) > 0, x, name, getattr(self, name), "give at least one")
        check(all(isinstance(f, (int, float)) and 0 < f <= 1 for f in self.fractions), x, "fractions", self.fractions,
              "training fractions in (0, 1], e.g. 0.5,1.0")
        object.__setattr__(self, "fractions", tuple(sorted({fraction(f) for f in self.fractions})))
        bad = [a for a in self.arms if a not in ARMS]
        check(not bad, x, "arms", self.arms, f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
        check(len(set(self.seeds)) == len(self.seeds), x, "seeds", self.seeds, "each seed once")


def plan_gans(classes: Sequence[str], store_fractions: Sequence[float], experiment: ExperimentParams) -> list[GanKey]:
    """One GAN per (class, training fraction), as in the paper; the store must hold each fraction."""
    have = {fraction(f) for f in store_fractions}
    missing = [f for f in experiment.fractions if f not in have]
    if missing:
        raise InputError(f"training fraction(s) {missing} were not prepared at ingest (the frame store has {sorted(have)}); "
                         "re-ingest with --train-fractions")
    return [GanKey(c, f) for f in experiment.fractions for c in classes]


def plan_classifiers(experiment: ExperimentParams) -> list[Cell]:
    """The classifier grid: arm x training fraction x seed."""
    return [Cell(a, f, s) for f in experiment.fractions for a in experiment.arms for s in experiment.seeds]


def run_overrides(profile: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The overrides a whole run passes to every task, with every section resolved once here so
    that a bad value fails before any task starts."""
    from lusynth.params import SECTIONS, merge_overrides, resolve

    merged = merge_overrides(overrides)
    resolve(SECTIONS, profile, merged)
    return merged
