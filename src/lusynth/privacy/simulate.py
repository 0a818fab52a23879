"""Simulated cohorts and generators with a known answer: the proof that the audit works.

Frames are feature vectors with patient random effects: patient ``p`` of class ``c`` has mean
``class_mean[c] + b_p`` with ``b_p ~ N(0, between^2 I)``; its frames add ``N(0, within^2 I)``,
so frames of one patient are closer to each other than to another patient's, as in real clips.
Patients alternate class and are split train / val / holdout within each class, as ingest does.

Generators (what :func:`lusynth.privacy.core.run_audit` must tell apart):

- :func:`leaky_noise`: training frames plus small noise (a memorising GAN);
- :func:`leaky_patients`: a share of the frames are noisy copies of a few training patients'
  frames, the rest like an independent generator;
- :func:`independent`: frames of fresh patients the generator never saw (a safe generator).

Pure numpy; deterministic for a ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lusynth.data.splits import allocate

__all__ = ["Cohort", "cohort", "independent", "leaky_noise", "leaky_patients"]

_ROLE_OF_SPLIT = ("member", "calibration", "nonmember")


@dataclass(frozen=True)
class Cohort:
    """Real frames of a simulated store: features, patient, class and audit role per row."""

    features: np.ndarray
    patients: np.ndarray
    labels: np.ndarray
    roles: np.ndarray
    class_means: np.ndarray
    between: float
    within: float

    def rows(self, role: str, label: int | None = None) -> np.ndarray:
        """Row indices of a role (and class)."""
        mask = self.roles == role
        if label is not None:
            mask &= self.labels == label
        return np.flatnonzero(mask)


def _patient_frames(rng: np.random.Generator, mean: np.ndarray, n: int, between: float, within: float) -> np.ndarray:
    centre = mean + rng.normal(0.0, between, mean.shape)
    return centre + rng.normal(0.0, within, (n, mean.size))


def cohort(rng: np.random.Generator, *, patients: int = 24, frames_per_patient: int = 16, dim: int = 64,
           split: tuple[float, float, float] = (0.6, 0.2, 0.2), between: float = 1.0, within: float = 0.5,
           class_shift: float = 0.5, classes: int = 2) -> Cohort:
    """A cohort of ``patients`` (alternating class) with ``frames_per_patient`` frames each."""
    means = rng.normal(0.0, class_shift, (classes, dim))
    feats, pats, labs, roles = [], [], [], []
    for c in range(classes):
        ids = list(range(c, patients, classes))
        order = rng.permutation(len(ids))
        counts = allocate(len(ids), split)
        role_of = np.repeat(np.arange(3), counts)
        for rank, k in enumerate(order):
            feats.append(_patient_frames(rng, means[c], frames_per_patient, between, within))
            pats += [f"p{ids[k]:04d}"] * frames_per_patient
            labs += [c] * frames_per_patient
            roles += [_ROLE_OF_SPLIT[role_of[rank]]] * frames_per_patient
    return Cohort(np.concatenate(feats).astype(np.float32), np.array(pats), np.array(labs), np.array(roles), means,
                  between, within)


def _per_class(n: int, classes: int) -> np.ndarray:
    return np.repeat(np.arange(classes), n)


def independent(rng: np.random.Generator, co: Cohort, n_per_class: int, *, new_patients: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels): frames of ``new_patients`` fresh patients per class, drawn at random."""
    out = []
    for c in range(len(co.class_means)):
        pool = np.concatenate([_patient_frames(rng, co.class_means[c], 16, co.between, co.within) for _ in range(new_patients)])
        out.append(pool[rng.integers(0, len(pool), n_per_class)])
    return np.concatenate(out).astype(np.float32), _per_class(n_per_class, len(co.class_means))


def leaky_noise(rng: np.random.Generator, co: Cohort, n_per_class: int, *, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels): training frames of the class plus ``N(0, (noise * within)^2)`` noise."""
    out = []
    for c in range(len(co.class_means)):
        mem = co.rows("member", c)
        x = co.features[mem[rng.integers(0, len(mem), n_per_class)]]
        out.append(x + rng.normal(0.0, noise * co.within, x.shape))
    return np.concatenate(out).astype(np.float32), _per_class(n_per_class, len(co.class_means))


def leaky_patients(rng: np.random.Generator, co: Cohort, n_per_class: int, *, share: float, copied_patients: int = 2,
                   noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels): a ``share`` of each class's frames are noisy copies of the frames of
    ``copied_patients`` training patients of the class; the rest as :func:`independent`."""
    x, y = independent(rng, co, n_per_class)
    for c in range(len(co.class_means)):
        mem = co.rows("member", c)
        chosen = rng.choice(np.unique(co.patients[mem]), min(copied_patients, len(np.unique(co.patients[mem]))), replace=False)
        src = mem[np.isin(co.patients[mem], chosen)]
        slots = np.flatnonzero(y == c)
        k = int(round(share * len(slots)))
        take = rng.choice(slots, k, replace=False)
        x[take] = co.features[src[rng.integers(0, len(src), k)]] + rng.normal(0.0, noise * co.within, (k, x.shape[1]))
    return x, y
