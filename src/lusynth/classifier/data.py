"""Training and validation sets from frame stores: arms, nested fractions, synthetic:real ratio, balance.

Arms (the paper's experiment):

- ``real``: the real ``train`` frames whose patients are in the nested training ``fraction``;
- ``real+aug``: the same frames (training augments them; :mod:`lusynth.classifier.params`);
- ``real+synthetic``: those, plus per class ``round(ratio * n_real(class))`` synthetic
  frames of that class (drawn without replacement, seeded; all of them if fewer exist), ``ratio``
  being the cell's synthetic:real ratio (``experiment.synthetic_ratios``);
- ``synthetic``: synthetic frames only (the paper's "data substitution"), all of them or at most
  ``synthetic_max_per_class`` per class.

Everything comes from one outer split (``fold``) of the store (:meth:`FrameStore.view`): training
frames from its inner training patients, validation always from its inner validation patients,
whatever the arm (checkpoints and thresholds are chosen on real data), and synthetic frames only
from GANs of the same fold. The fold's test patients are never read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lusynth.classifier.params import ARMS, SYNTHETIC_ARMS
from lusynth.data.framestore import FrameStore
from lusynth.errors import InputError
from lusynth.keys import fraction as canonical_fraction


@dataclass
class LabelledFrames:
    """Frames (N, S, S) uint8 with 0/1 labels (1 = positive class) and where each came from."""

    frames: np.ndarray
    labels: np.ndarray
    source: np.ndarray  # 'real' or 'synthetic' per frame
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> class -> frames
    digests: dict[str, str] = field(default_factory=dict)  # store path -> content digest

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def synthetic_fraction(store: FrameStore) -> float | None:
    """The training fraction of the GAN that made a synthetic store, when its provenance says so."""
    for key in ("fraction", "train_fraction"):
        v = store.header.get(key)
        if v is None and isinstance(store.header.get("gan"), dict):
            v = store.header["gan"].get(key)
        if v is not None:
            return float(v)
    if "train_fraction" in store.manifest.columns:
        tf = pd.to_numeric(store.manifest["train_fraction"], errors="coerce").dropna().unique()
        if len(tf) == 1:
            return float(tf[0])
    return None


def check_synthetic_stores(real: FrameStore, synthetic: Sequence[FrameStore], *, fraction: float, fold: int = 0) -> None:
    """Synthetic stores must match the real store's classes, image size, training fraction and
    outer fold (a GAN of another fold learned this fold's test patients)."""
    for s in synthetic:
        folds = sorted({int(info.get("fold", 0) or 0) for info in (s.header.get("privacy_filter") or {}).values()})
        if folds and folds != [fold]:
            raise InputError(f"{s.path}: synthetic frames come from GANs of fold(s) {folds}, but the classifier is trained in fold "
                             f"{fold}; pass the synthetic sets of its own fold (another fold's GAN learned its test patients)")
        if s.kind != "synthetic":
            raise InputError(f"{s.path}: a frame store of kind {s.kind!r} was given as synthetic; pass the output of `lusynth generate`")
        if s.image_size != real.image_size:
            raise InputError(f"{s.path}: synthetic frames are {s.image_size}x{s.image_size}, real frames {real.image_size}x{real.image_size}; generate at the real size")
        unknown = sorted(set(s.manifest["label"]) - set(real.classes))
        if unknown:
            raise InputError(f"{s.path}: synthetic labels {unknown} are not classes of the real store {real.classes}")
        sf = synthetic_fraction(s)
        if sf is not None and canonical_fraction(sf) != canonical_fraction(fraction):
            raise InputError(
                f"{s.path}: synthetic frames come from a GAN trained on fraction {sf}, but the classifier is "
                f"trained at fraction {fraction}; pass the synthetic stores of fraction {fraction}"
            )


def _take(store: FrameStore, idx: np.ndarray) -> np.ndarray:
    # sorted fancy indexing of a memmap reads each page once; returns an in-memory copy
    return np.asarray(store.frames[np.sort(idx)])


def training_frames(
    real: FrameStore,
    *,
    arm: str,
    fraction: float,
    synthetic: Sequence[FrameStore] = (),
    ratio: float = 1.0,
    synthetic_max_per_class: int = 0,
    seed: int = 0,
    fold: int = 0,
) -> LabelledFrames:
    """The training set of one arm at one fraction inside outer split ``fold`` (see the module docstring)."""
    if arm not in ARMS:
        raise InputError(f"arm={arm!r}: choose one of {', '.join(ARMS)}")
    if not 0 < fraction <= 1:
        raise InputError(f"fraction={fraction}: a training fraction in (0, 1]")
    positive = real.header.get("positive_class") or real.classes[-1]
    rng = np.random.default_rng([int(seed), 7919])  # fixed stream id: selection independent of training noise
    parts: list[tuple[np.ndarray, np.ndarray, str]] = []
    counts: dict[str, dict[str, int]] = {"real": {}, "synthetic": {}}
    digests: dict[str, str] = {}
    n_real: dict[str, int] = {}
    for cls in real.classes:
        idx = real.view(fold, "train", label=cls, fraction=fraction)
        n_real[cls] = len(idx)
        if arm != "synthetic":
            if len(idx) == 0:
                raise InputError(f"{real.path}: no real training frames of class {cls!r} at fraction {fraction}; use a larger fraction or re-run ingest")
            parts.append((_take(real, idx), np.full(len(idx), int(cls == positive)), "real"))
            counts["real"][cls] = len(idx)
    if arm != "synthetic":
        digests[str(real.path)] = real.digest
    if arm in SYNTHETIC_ARMS:
        if not synthetic:
            raise InputError(f"arm {arm!r} needs synthetic frame stores (--synthetic DIR, from `lusynth generate`)")
        check_synthetic_stores(real, synthetic, fraction=fraction, fold=fold)
        for cls in real.classes:
            pool = [(s, s.indices(split="synthetic", label=cls)) for s in synthetic if cls in set(s.manifest["label"])]
            available = sum(len(i) for _, i in pool)
            if available == 0:
                raise InputError(f"arm {arm!r}: no synthetic frames of class {cls!r} among {[str(s.path) for s in synthetic]}; generate them with that class's GAN")
            if arm == "real+synthetic":
                want = int(round(ratio * n_real[cls]))
            else:
                want = synthetic_max_per_class or available
            want = min(max(want, 1), available)
            # draw `want` of the pooled frames without replacement, then read them store by store
            chosen = np.sort(rng.choice(available, size=want, replace=False))
            offset = 0
            for s, idx in pool:
                mine = chosen[(chosen >= offset) & (chosen < offset + len(idx))] - offset
                offset += len(idx)
                if len(mine):
                    parts.append((_take(s, idx[mine]), np.full(len(mine), int(cls == positive)), "synthetic"))
                    digests[str(s.path)] = s.digest
            counts["synthetic"][cls] = want
    frames = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    source = np.concatenate([np.full(len(p[1]), p[2]) for p in parts])
    if len(np.unique(labels)) < 2:
        raise InputError(f"arm {arm!r} at fraction {fraction}: the training set has a single class; both classes are needed")
    return LabelledFrames(frames, labels, source, {k: v for k, v in counts.items() if v}, digests)


def split_frames(real: FrameStore, role: str = "val", *, fold: int = 0) -> LabelledFrames:
    """All real frames of one role of outer split ``fold`` (``val`` for model selection) with 0/1 labels."""
    idx = real.view(fold, role)
    if len(idx) == 0:
        raise InputError(f"{real.path}: no {role} frames in fold {fold}; re-run ingest with more patients")
    labels = real.labels_as_int(idx)
    if len(np.unique(labels)) < 2:
        raise InputError(f"{real.path}: the {role} patients of fold {fold} hold a single class; AUC needs both (re-run ingest with more patients)")
    frames = np.asarray(real.frames[idx])
    return LabelledFrames(frames, labels, np.full(len(idx), "real"), {"real": {}}, {str(real.path): real.digest})


def balanced_epoch(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of indices, class-balanced as the reference: the minority class is oversampled to
    the majority's count, both are shuffled, then interleaved (pos, neg, pos, neg, ...)."""
    pos = np.flatnonzero(labels == 1)
    neg = np.flatnonzero(labels == 0)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("balanced_epoch needs both classes")
    n = max(len(pos), len(neg))
    pos = np.concatenate([pos, rng.choice(pos, n - len(pos))]) if len(pos) < n else pos
    neg = np.concatenate([neg, rng.choice(neg, n - len(neg))]) if len(neg) < n else neg
    out = np.empty(2 * n, dtype=np.int64)
    out[0::2] = rng.permutation(pos)
    out[1::2] = rng.permutation(neg)
    return out
