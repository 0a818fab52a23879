"""The experiment grid: which GANs and which classifiers a run trains (pure).

The KFP pipeline fans out over :func:`plan_gans` and :func:`plan_classifiers`, DVC's matrix and
``lusynth run`` read the same :class:`ExperimentParams`, so the grid is defined once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lusynth.classifier.params import ARMS, SYNTHETIC_ARMS
from lusynth.data.splits import CrossValidation
from lusynth.errors import InputError
from lusynth.keys import GENERATORS, Cell, GanKey, fraction, ratio
from lusynth.params import check, check_choices

__all__ = ["ExperimentParams", "check_families_fit", "check_run", "plan_classifiers", "plan_gans", "run_overrides"]


@dataclass(frozen=True)
class ExperimentParams:
    """The grid of one run: nested training fractions x arms x classifier seeds, generator families
    and GAN seeds per (class, fraction), and the synthetic:real ratios of the real+synthetic arm."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"seed_design": ("crossed", "paired")}

    fractions: tuple[float, ...] = (0.5, 1.0)  # nested training fractions of patients (GANs per class and fraction)
    arms: tuple[str, ...] = ARMS  # classifier arms: real, real+aug (classical augmentation), real+synthetic, synthetic
    seeds: tuple[int, ...] = (0,)  # classifier seeds (one classifier per arm, fraction and seed)
    gan_seeds: tuple[int, ...] = (0,)  # GAN seeds: one GAN per class, fraction and GAN seed (GAN-to-GAN variance)
    # generator families compared on the same patients (lusynth.gan.families): one GAN per class,
    # fraction, GAN seed and family, and the synthetic arms' cells (and verdicts) once per family
    generators: tuple[str, ...] = ("dcgan",)
    # crossed: every synthetic-arm classifier seed with every GAN seed; paired: classifier seed i
    # reads GAN seed i mod len(gan_seeds) (fewer classifiers; both variances still sampled)
    seed_design: str = "crossed"
    synthetic_ratios: tuple[float, ...] = (1.0,)  # real+synthetic: synthetic frames per real frame; several = a sweep
    # outer patient-level stratified K-fold cross-validation: every patient is tested once per
    # repeat, by models trained without it; 1 = the legacy single train/val/holdout split
    # (ingest.split_fractions), which tests a fifth of the patients and samples no training-set variance.
    # The demo uses K=2: its 2-core time budget and its 80-line output (a task line per GAN and
    # classifier) hold at 2 folds x 2 fractions; the paper profile uses 5
    folds: int = 2
    repeats: int = 1  # repeated K-fold: the partition is drawn anew per repeat (repeats x folds outer splits)
    inner_val_share: float = 0.25  # share of a fold's training patients held out as its inner validation split (selection, thresholds)

    def __post_init__(self) -> None:
        x = "experiment"
        for name in ("fractions", "arms", "seeds", "gan_seeds", "generators", "synthetic_ratios"):
            check(len(getattr(self, name)) > 0, x, name, getattr(self, name), "give at least one")
        check(all(isinstance(f, (int, float)) and 0 < f <= 1 for f in self.fractions), x, "fractions", self.fractions,
              "training fractions in (0, 1], e.g. 0.5,1.0")
        object.__setattr__(self, "fractions", tuple(sorted({fraction(f) for f in self.fractions})))
        bad = [a for a in self.arms if a not in ARMS]
        check(not bad, x, "arms", self.arms, f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
        check(len(set(self.seeds)) == len(self.seeds), x, "seeds", self.seeds, "each seed once")
        check(len(set(self.gan_seeds)) == len(self.gan_seeds) and all(isinstance(g, int) and g >= 0 for g in self.gan_seeds),
              x, "gan_seeds", self.gan_seeds, "distinct integers >= 0, e.g. 0,1")
        check(all(g in GENERATORS for g in self.generators), x, "generators", self.generators, f"choose from {', '.join(GENERATORS)}")
        check(len(set(self.generators)) == len(self.generators), x, "generators", self.generators, "each family once, e.g. dcgan,fastgan")
        check_choices(self, x)
        check(all(isinstance(r, (int, float)) and 0 < r < float("inf") for r in self.synthetic_ratios), x, "synthetic_ratios",
              self.synthetic_ratios, "synthetic frames per real frame, each > 0, e.g. 0.5,1,2")
        object.__setattr__(self, "synthetic_ratios", tuple(sorted({ratio(r) for r in self.synthetic_ratios})))
        check(isinstance(self.folds, int) and self.folds >= 1, x, "folds", self.folds, "K >= 2 for K-fold (or 1 for a single split)")
        check(isinstance(self.repeats, int) and self.repeats >= 1, x, "repeats", self.repeats, "an integer >= 1")
        check(self.repeats == 1 or self.folds >= 2, x, "repeats", self.repeats, "repeats need K-fold: set experiment.folds >= 2")
        check(0 < self.inner_val_share < 1, x, "inner_val_share", self.inner_val_share, "a share in (0, 1), e.g. 0.25")

    @property
    def cv(self) -> CrossValidation:
        """The outer protocol the frame store is prepared for."""
        return CrossValidation(self.folds, self.repeats, self.inner_val_share)

    @property
    def n_splits(self) -> int:
        """Outer splits (folds x repeats; 1 for the single split): the range of a task key's ``fold``."""
        return self.cv.n_splits


def plan_gans(classes: Sequence[str], store_fractions: Sequence[float], experiment: ExperimentParams, *,
              store_splits: int | None = None) -> list[GanKey]:
    """One GAN per (class, training fraction, GAN seed, generator family, outer split); the store must hold each
    fraction and (``store_splits``: its folds x repeats, when known) the grid's outer splits."""
    have = {fraction(f) for f in store_fractions}
    missing = [f for f in experiment.fractions if f not in have]
    if missing:
        raise InputError(f"training fraction(s) {missing} were not prepared at ingest (the frame store has {sorted(have)}); "
                         "re-ingest with --train-fractions")
    if store_splits is not None and store_splits != experiment.n_splits:
        raise InputError(f"experiment.folds={experiment.folds} x repeats={experiment.repeats} gives {experiment.n_splits} outer "
                         f"split(s), but the frame store was prepared for {store_splits}; re-ingest with the same experiment settings")
    return [GanKey(c, f, g, k, fam) for k in range(experiment.n_splits) for fam in experiment.generators for f in experiment.fractions
            for g in experiment.gan_seeds for c in classes]


def plan_classifiers(experiment: ExperimentParams) -> list[Cell]:
    """The classifier grid: outer split x arm x training fraction x classifier seed; a synthetic
    arm's cells also run over the generator families and the GAN seeds (crossed, or paired with the
    classifier seed), and real+synthetic's over the synthetic:real ratios, so each reads the set of
    one GAN (of its own fold and family) and GAN-to-GAN variance is sampled."""
    x = experiment
    cells = []
    for k in range(x.n_splits):
        cells += [dataclasses.replace(c, fold=k) for c in _plan_split(x)]
    return cells


def _plan_split(x: ExperimentParams) -> list[Cell]:
    cells = []
    for f in x.fractions:
        for a in x.arms:
            for i, s in enumerate(x.seeds):
                if a not in SYNTHETIC_ARMS:
                    cells.append(Cell(a, f, s))
                    continue
                gans = x.gan_seeds if x.seed_design == "crossed" else (x.gan_seeds[i % len(x.gan_seeds)],)
                ratios = x.synthetic_ratios if a == "real+synthetic" else (0.0,)
                cells += [Cell(a, f, s, ratio=r, gan_seed=g, generator=fam) for fam in x.generators for r in ratios for g in gans]
    return cells


def run_overrides(profile: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The overrides a whole run passes to every task, with every section resolved once here so
    that a bad value fails before any task starts."""
    from lusynth.params import SECTIONS, merge_overrides, resolve

    merged = merge_overrides(overrides)
    check_run(resolve(SECTIONS, profile, merged), where=f"profile {profile}")
    return merged


def check_run(resolved: Mapping[str, Any], *, where: str = "parameters") -> None:
    """The rules that span sections, on a run's resolved sections: every generator family in
    ``experiment.generators`` must be able to train on ``ingest.image_size`` frames with the ``gan``
    section's parameters (e.g. ``gan.fastgan_downscale``), so a run that would fail at its first
    GAN task after ingest fails here instead, in one line."""
    check_families_fit(resolved["experiment"].generators, resolved["gan"], resolved["ingest"].image_size,
                       where=f"{where}: ingest.image_size={resolved['ingest'].image_size}")


def check_families_fit(generators: Sequence[str], gan: Any, image_size: int, *, where: str) -> None:
    """InputError naming ``where`` when a family of ``generators`` cannot train on ``image_size``
    frames with ``gan`` (GanParams): run planning asks it of ``ingest.image_size``, the pipeline's
    GAN plan of the frame store it fans out over (a run submitted without the CLI's checks)."""
    from lusynth.gan.families import fit_problem

    for family in generators:
        problem = fit_problem(gan, image_size, family)
        if problem:
            raise InputError(f"{where} with experiment.generators={','.join(generators)}: {problem}")
