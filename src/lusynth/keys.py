"""Value objects that key the experiment's artefacts: exact equality, no float tolerance.

A training fraction is held as a canonical decimal (6 significant digits), so ``0.5`` read back
from JSON, from a CLI flag or from a KFP parameter is the same key everywhere; artefacts are
matched by ``==`` on these objects, never by ``abs(a - b) < eps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lusynth.errors import InputError

__all__ = ["Cell", "GanKey", "fraction"]


def fraction(value: Any, *, where: str = "fraction") -> float:
    """A training fraction in (0, 1], canonicalised so equal fractions compare equal."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {value!r} is not a number; give a training fraction in (0, 1], e.g. 0.5") from None
    if not 0.0 < f <= 1.0:
        raise InputError(f"{where}: {f:g} is outside (0, 1]; give a training fraction such as 0.25, 0.5 or 1")
    return float(f"{f:.6g}")


@dataclass(frozen=True, order=True)
class GanKey:
    """One generator of the grid: the class it learns and the training fraction it saw."""

    label: str
    fraction: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", fraction(self.fraction, where=f"GAN {self.label!r} fraction"))

    def __str__(self) -> str:
        return f"{self.label}@{self.fraction:g}"

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "fraction": self.fraction}


@dataclass(frozen=True, order=True)
class Cell:
    """One classifier of the grid: arm x training fraction x seed."""

    arm: str
    fraction: float
    seed: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", fraction(self.fraction, where=f"arm {self.arm!r} fraction"))
        object.__setattr__(self, "seed", int(self.seed))

    def __str__(self) -> str:
        return f"{self.arm}@{self.fraction:g}#{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "fraction": self.fraction, "seed": self.seed}
