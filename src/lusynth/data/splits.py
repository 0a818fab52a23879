"""Patient-level splits (pure).

Frames of one patient are strongly correlated (same probe, same settings, same lungs), so every
split is made over patients, never over frames: a patient is in exactly one of train / val /
holdout. Patients are stratified by the set of labels their clips carry, so each class keeps its
share in every split. Training fractions are nested by patient (0.25 ⊂ 0.5 ⊂ 1.0), as in the
paper's data-size experiment: a smaller fraction is a prefix of one fixed patient order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SPLIT_NAMES = ("train", "val", "holdout")


def _stratum_rng(seed: int, stratum: str, salt: str) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(f"{salt}:{stratum}".encode()).digest()[:8], "little")
    return np.random.default_rng([int(seed), h])


def stratum_of(labels: Collection[str]) -> str:
    """The stratification key of a patient: its sorted label set ('a' or 'a+b')."""
    return "+".join(sorted(set(labels)))


def allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` items into counts proportional to ``fractions`` (largest remainder).

    When ``n`` is at least the number of non-zero fractions, every non-zero fraction gets at least
    one item (taken from the largest group), so a small class still reaches every split.
    """
    total = float(sum(fractions))
    ideal = [n * f / total for f in fractions]
    counts = [math.floor(x) for x in ideal]
    order = sorted(range(len(fractions)), key=lambda i: (-(ideal[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    nonzero = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(nonzero):
        for i in nonzero:
            if counts[i] == 0:
                j = max(range(len(counts)), key=lambda k: (counts[k], -k))
                counts[j] -= 1
                counts[i] += 1
    return counts


def split_patients(
    patient_labels: Mapping[str, Collection[str]],
    *,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> dict[str, str]:
    """Assign each patient to 'train' / 'val' / 'holdout', stratified by label set."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers (train, val, holdout), got {tuple(fractions)}")
    strata: dict[str, list[str]] = {}
    for pid in sorted(patient_labels):
        strata.setdefault(stratum_of(patient_labels[pid]), []).append(pid)
    out: dict[str, str] = {}
    for stratum in sorted(strata):
        pids = strata[stratum]
        order = _stratum_rng(seed, stratum, "split").permutation(len(pids))
        counts = allocate(len(pids), fractions)
        start = 0
        for name, c in zip(SPLIT_NAMES, counts, strict=True):
            for k in order[start : start + c]:
                out[pids[k]] = name
            start += c
    return out


def nested_fractions(
    patient_labels: Mapping[str, Collection[str]],
    *,
    fractions: Sequence[float] = (0.5, 1.0),
    seed: int = 0,
) -> dict[str, float]:
    """For each (training) patient, the smallest training fraction that includes it.

    Within each stratum the patients are put in one fixed random order; fraction ``f`` takes the
    first ``max(1, ceil(f * n))`` of them, so the sets are nested and every stratum is present in
    every fraction.
    """
    fr = sorted(float(f) for f in fractions)
    if not fr or fr[0] <= 0 or fr[-1] > 1:
        raise ValueError(f"training fractions must lie in (0, 1], got {tuple(fractions)}")
    strata: dict[str, list[str]] = {}
    for pid in sorted(patient_labels):
        strata.setdefault(stratum_of(patient_labels[pid]), []).append(pid)
    out: dict[str, float] = {}
    for stratum in sorted(strata):
        pids = strata[stratum]
        n = len(pids)
        order = _stratum_rng(seed, stratum, "fraction").permutation(n)
        ks = [min(n, max(1, math.ceil(f * n - 1e-9))) for f in fr]
        for rank, k in enumerate(order):
            # ranks beyond the largest fraction's prefix are in no fraction (largest fraction < 1)
            member = [f for f, kk in zip(fr, ks, strict=True) if rank < kk]
            if member:
                out[pids[k]] = member[0]
    return out


def assign_folds(patient_labels: Mapping[str, Collection[str]], *, folds: int, seed: int = 0, repeat: int = 0) -> dict[str, int]:
    """Patient-level stratified K-fold: each patient's outer test fold in ``0..folds-1``.

    Within each stratum (label set) the patients are put in a random order (seeded by ``seed`` and
    ``repeat``, so repeated cross-validation draws new folds) and dealt round-robin, starting each
    stratum where the previous one stopped, so fold sizes differ by at most one and each fold
    holds its share of every class. Every patient is in exactly one test fold.
    """
    if folds < 2:
        raise ValueError(f"folds={folds}: K-fold cross-validation needs at least 2 folds")
    strata: dict[str, list[str]] = {}
    for pid in sorted(patient_labels):
        strata.setdefault(stratum_of(patient_labels[pid]), []).append(pid)
    out: dict[str, int] = {}
    start = 0
    for stratum in sorted(strata):
        pids = strata[stratum]
        order = _stratum_rng(seed, stratum, f"fold:{repeat}").permutation(len(pids))
        for rank, k in enumerate(order):
            out[pids[k]] = (start + rank) % folds
        start = (start + len(pids)) % folds
    return out


def fold_roles(
    patient_labels: Mapping[str, Collection[str]],
    fold_of: Mapping[str, int],
    *,
    fold: int,
    val_share: float = 0.25,
    fractions: Sequence[float] = (0.5, 1.0),
    seed: int = 0,
) -> dict[str, tuple[str, float | None]]:
    """Inside outer fold ``fold``: each patient's role, ``("test", None)`` for the fold's test
    patients, else ``("val", None)`` (the inner validation split) or ``("train", f)`` with ``f``
    the smallest nested training fraction that includes it (``("train", None)`` when the largest
    fraction is below 1 and it is in none).

    Only the fold's training patients (``fold_of[p] != fold``) are split into inner train / val,
    stratified by label set, and only its inner training patients get nested fractions, so
    nothing inside the fold (GAN training, checkpoint choice, the near-copy filter, classifier
    training, the threshold) ever depends on a test patient.
    """
    if not 0 < val_share < 1:
        raise ValueError(f"val_share={val_share}: the inner validation share must be in (0, 1)")
    outer_train = {p: labels for p, labels in patient_labels.items() if fold_of[p] != fold}
    counts: dict[str, int] = {}
    for labels in outer_train.values():
        counts[stratum_of(labels)] = counts.get(stratum_of(labels), 0) + 1
    few = {s: n for s, n in counts.items() if n < 2}
    if few:
        raise ValueError(f"fold {fold}: {few} training patient(s) of class {', '.join(few)}; an inner train and validation split "
                         "needs at least 2 per class: use fewer folds or more patients")
    inner = split_patients(outer_train, fractions=(1 - val_share, val_share, 0.0), seed=seed * 1009 + fold)
    train = {p: patient_labels[p] for p, s in inner.items() if s == "train"}
    frac = nested_fractions(train, fractions=fractions, seed=seed * 1009 + fold)
    roles: dict[str, tuple[str, float | None]] = {p: ("test", None) for p in patient_labels if fold_of[p] == fold}
    for p, s in inner.items():
        roles[p] = ("val", None) if s == "val" else ("train", frac.get(p))
    return roles


@dataclass(frozen=True)
class CrossValidation:
    """The outer protocol a frame store is prepared for (derived from ``experiment.folds`` /
    ``repeats`` / ``inner_val_share`` by the ingest stage; not a parameter section of its own).
    ``folds = 1`` is the legacy single train/val/holdout split (``ingest.split_fractions``)."""

    folds: int = 1
    repeats: int = 1
    val_share: float = 0.25

    @property
    def n_splits(self) -> int:
        """Outer splits in all: ``folds x repeats`` (1 for the single split)."""
        return self.folds * self.repeats if self.folds >= 2 else 1


def split_index(fold: int, repeat: int, folds: int) -> int:
    """The index a task key's ``fold`` holds: outer fold ``fold`` of repeat ``repeat`` is ``repeat * folds + fold``."""
    return repeat * folds + fold


def split_of_index(index: int, folds: int) -> tuple[int, int]:
    """(repeat, outer fold) of a task key's ``fold`` index (inverse of :func:`split_index`)."""
    return (index // folds, index % folds) if folds >= 2 else (0, index)


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed of the inner splits of one repeat (repeat 0 keeps ``seed``)."""
    return int(seed) + 100_003 * int(repeat)
