"""Helpers shared by the classifier, evaluate and report tests: small phantom frame stores.

``phantom_frames`` renders the built-in phantom and resizes it to 64x64 with PIL; ``write_real_store``
assigns whole patients to train/val/holdout (both classes in each) and nested fractions 0.5/1.0;
``write_synthetic_store`` writes perturbed copies of real frames as a synthetic store (a stand-in
for a GAN's output with a known relation to the training frames).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from lusynth.data.framestore import write_store
from lusynth.data.phantom import CLASSES, CONSOLIDATION, PhantomParams, render_frames

SIZE = 64


@functools.lru_cache(maxsize=4)
def phantom_frames(patients: int = 24, seed: int = 0, clips: int = 2, frames_per_clip: int = 8) -> tuple[np.ndarray, tuple[dict, ...]]:
    """Phantom frames resized to SIZE x SIZE (cached: rendering is the slow part)."""
    frames, rows = render_frames(PhantomParams(seed=seed, patients=patients, clips_per_patient=clips,
                                               frames_per_clip=frames_per_clip, width=160, height=144,
                                               difficulty=0.0))  # textbook signs: these tests check plumbing, not difficulty
    small = np.stack([np.asarray(Image.fromarray(f).resize((SIZE, SIZE), Image.BILINEAR)) for f in frames])
    return small, tuple(rows)


def patient_split(patient_index: int) -> str:
    """Patients alternate class, so pairs (2k, 2k+1) keep every split balanced."""
    k = patient_index // 2
    return "holdout" if k % 4 == 0 else "val" if k % 4 == 1 else "train"


def write_real_store(path: Path, *, patients: int = 24, seed: int = 0) -> Path:
    """A real frame store from the phantom with a patient-level split and nested fractions."""
    frames, rows = phantom_frames(patients, seed)
    out = []
    order = _order(rows)
    train_patients = [pid for pid, i in order.items() if patient_split(i) == "train"]
    # the first half of the train pairs (one patient of each class per pair) form fraction 0.5
    half = set(train_patients[: 2 * ((len(train_patients) // 2 + 1) // 2)])
    for _frame, r in zip(frames, rows, strict=False):
        split = patient_split(order[r["patient_id"]])
        tf = "" if split != "train" else (0.5 if r["patient_id"] in half else 1.0)
        out.append({**r, "split": split, "train_fraction": tf, "source": "phantom"})
    write_store(path, frames, out, kind="real", classes=list(CLASSES), positive_class=CONSOLIDATION)
    return path


def _order(rows: tuple[dict, ...]) -> dict[str, int]:
    """Patient id -> index in render order (the phantom alternates classes by index)."""
    seen: dict[str, int] = {}
    for r in rows:
        seen.setdefault(r["patient_id"], len(seen))
    return seen


def write_synthetic_store(path: Path, frames: np.ndarray, label: str, *, fraction: float, noise: float = 8.0, seed: int = 0,
                          withheld: str = "") -> Path:
    """Noisy copies of ``frames`` as a synthetic store of one class (kind 'synthetic'); ``withheld``: as
    generate writes a class it released nothing of (rows ``split='withheld'``, the reason in the header)."""
    rng = np.random.default_rng(seed)
    noisy = np.clip(frames.astype(np.float64) + rng.normal(0, noise, frames.shape), 0, 255).astype(np.uint8)
    rows = [{"patient_id": "synthetic", "video_id": f"gan-{label}", "frame_index": i, "label": label,
             "split": "withheld" if withheld else "synthetic", "train_fraction": fraction, "source": "test-noisy-copy"} for i in range(len(noisy))]
    extra: dict[str, object] = {"fraction": fraction}
    if withheld:
        extra["privacy_filter"] = {label: {"fraction": fraction, "kept": 0, "withheld": withheld}}
    write_store(path, noisy, rows, kind="synthetic", classes=list(CLASSES), positive_class=CONSOLIDATION, extra_header=extra)
    return path
