"""Value objects that key the experiment's artefacts: exact equality, no float tolerance.

A training fraction is held as a canonical decimal (6 significant digits), so ``0.5`` read back
from JSON, from a CLI flag or from a KFP parameter is the same key everywhere; artefacts are
matched by ``==`` on these objects, never by ``abs(a - b) < eps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lusynth.errors import InputError

__all__ = ["GENERATORS", "Cell", "GanKey", "family_tag", "fraction", "generator", "ratio"]

#: generator families the GAN stage can train (lusynth.gan.families): the paper's DCGAN and FastGAN-lite.
#: Here, with the keys they are part of, so planning the grid does not import the GAN stage.
GENERATORS = ("dcgan", "fastgan")


def fraction(value: Any, *, where: str = "fraction") -> float:
    """A training fraction in (0, 1], canonicalised so equal fractions compare equal."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {value!r} is not a number; give a training fraction in (0, 1], e.g. 0.5") from None
    if not 0.0 < f <= 1.0:
        raise InputError(f"{where}: {f:g} is outside (0, 1]; give a training fraction such as 0.25, 0.5 or 1")
    return float(f"{f:.6g}")


def ratio(value: Any, *, where: str = "ratio") -> float:
    """A synthetic:real ratio >= 0 (0 = the cell reads no synthetic frames), canonicalised like a fraction."""
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {value!r} is not a number; give synthetic frames per real frame, e.g. 1") from None
    if not r >= 0.0 or r == float("inf"):
        raise InputError(f"{where}: {r:g} must be a finite number >= 0 (synthetic frames per real frame, e.g. 0.5, 1, 2)")
    return float(f"{r:.6g}")


def generator(value: Any, *, where: str = "generator") -> str:
    """A generator family of :data:`GENERATORS` (``dcgan`` | ``fastgan``)."""
    if value not in GENERATORS:
        raise InputError(f"{where}: {value!r} is not a generator family; choose one of {', '.join(GENERATORS)}")
    return str(value)


def _index(value: Any, *, where: str) -> int:
    try:
        i = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {value!r} is not an integer") from None
    if i < 0 or i != float(value):
        raise InputError(f"{where}: {value!r} must be an integer >= 0")
    return i


@dataclass(frozen=True, order=True)
class GanKey:
    """One generator of the grid: the class it learns, the training fraction it saw, its GAN seed,
    the outer fold whose training patients it learned from (fold 0 when the run has one split) and
    its family (``generator``: the paper's ``dcgan`` or ``fastgan``, :mod:`lusynth.gan.families`)."""

    label: str
    fraction: float
    gan_seed: int = 0
    fold: int = 0
    generator: str = "dcgan"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", fraction(self.fraction, where=f"GAN {self.label!r} fraction"))
        object.__setattr__(self, "gan_seed", _index(self.gan_seed, where=f"GAN {self.label!r} gan_seed"))
        object.__setattr__(self, "fold", _index(self.fold, where=f"GAN {self.label!r} fold"))
        object.__setattr__(self, "generator", generator(self.generator, where=f"GAN {self.label!r} generator"))

    def __str__(self) -> str:
        return (f"{self.label}@{self.fraction:g}~g{self.gan_seed}" + (f"~k{self.fold}" if self.fold else "")
                + family_tag(self.generator))

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "fraction": self.fraction, "gan_seed": self.gan_seed, "fold": self.fold, "generator": self.generator}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GanKey:
        """The key in a record (a GAN's metadata; fields a record predates default to 0 and ``dcgan``)."""
        return cls(str(d["label"]), d["fraction"], d.get("gan_seed", 0) or 0, d.get("fold", 0) or 0, d.get("generator") or "dcgan")


def family_tag(family: str, sep: str = "~", *, after: str = "") -> str:
    """A generator family in a name: ``sep + family (+ after)`` (``~fastgan``), and nothing for the
    paper's DCGAN or an arm without GANs (``""``), so every name from before families stays as it was."""
    return "" if family in ("", "dcgan") else f"{sep}{family}{after}"


@dataclass(frozen=True, order=True)
class Cell:
    """One classifier of the grid: arm x training fraction x classifier seed, with the
    synthetic:real ``ratio`` (real+synthetic; 0 = its default 1), the ``gan_seed`` and ``generator``
    family whose synthetic frames it reads (synthetic arms) and its outer ``fold``. Canonical like
    the fraction: an arm without synthetic frames has ratio 0, GAN seed 0 and generator ``dcgan``,
    the synthetic arm ratio 0."""

    arm: str
    fraction: float
    seed: int
    ratio: float = 0.0
    gan_seed: int = 0
    fold: int = 0
    generator: str = "dcgan"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", fraction(self.fraction, where=f"arm {self.arm!r} fraction"))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "ratio", ratio(self.ratio, where=f"arm {self.arm!r} ratio"))
        object.__setattr__(self, "gan_seed", _index(self.gan_seed, where=f"arm {self.arm!r} gan_seed"))
        object.__setattr__(self, "fold", _index(self.fold, where=f"arm {self.arm!r} fold"))
        object.__setattr__(self, "generator", generator(self.generator, where=f"arm {self.arm!r} generator"))
        from lusynth.classifier.params import SYNTHETIC_ARMS

        if self.arm != "real+synthetic":
            object.__setattr__(self, "ratio", 0.0)
        elif self.ratio == 0:
            object.__setattr__(self, "ratio", 1.0)
        if self.arm not in SYNTHETIC_ARMS:
            object.__setattr__(self, "gan_seed", 0)
            object.__setattr__(self, "generator", "dcgan")

    def __str__(self) -> str:
        extra = (f"x{self.ratio:g}" if self.ratio else "") + (f"~g{self.gan_seed}" if self.gan_seed else "")
        return f"{self.arm}@{self.fraction:g}#{self.seed}{extra}" + (f"~k{self.fold}" if self.fold else "") + family_tag(self.generator)

    def as_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "fraction": self.fraction, "seed": self.seed, "ratio": self.ratio, "gan_seed": self.gan_seed,
                "fold": self.fold, "generator": self.generator}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        """The cell in a record (a classifier's metadata; fields a record predates default to 0 and ``dcgan``)."""
        return cls(str(d["arm"]), d["fraction"], int(d["seed"]), d.get("ratio", 0) or 0, d.get("gan_seed", 0) or 0, d.get("fold", 0) or 0,
                   d.get("generator") or "dcgan")
