"""Tests of the GAN stages. Most use the shared ``phantom_store`` fixture (tests/conftest.py);
``make_phantom_store`` builds an ingest-like 64x64 phantom store (patient-level train/val/holdout,
nested fractions 0.5/1.0) where a test needs a different size (more validation patients, or a
second store with another digest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lusynth.data.framestore import write_store
from lusynth.data.phantom import PhantomParams, render_frames
from lusynth.data.splits import nested_fractions, split_patients


def make_phantom_store(path: Path, *, patients: int = 12, clips: int = 2, frames: int = 6, size: int = 64, seed: int = 0) -> Path:
    """Render phantom clips, centre-crop and resize to ``size``, split by patient; return ``path``."""
    raw, rows = render_frames(PhantomParams(seed=seed, patients=patients, clips_per_patient=clips, frames_per_clip=frames))
    h, w = raw.shape[1:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    out = np.stack([np.asarray(Image.fromarray(f[top : top + s, left : left + s]).resize((size, size), Image.BILINEAR)) for f in raw])
    labels = {r["patient_id"]: [r["label"]] for r in rows}
    split = split_patients(labels, fractions=(0.6, 0.2, 0.2), seed=seed)
    frac = nested_fractions({p: lab for p, lab in labels.items() if split[p] == "train"}, fractions=(0.5, 1.0), seed=seed)
    full = []
    for i, r in enumerate(rows):
        sp = split[r["patient_id"]]
        full.append({**r, "frame_id": f"f{i:05d}", "split": sp, "train_fraction": frac.get(r["patient_id"], "") if sp == "train" else "",
                     "source": "phantom"})
    write_store(path, out, full, kind="real", classes=["consolidation", "no_consolidation"], positive_class="consolidation")
    return path


def shared_store(base: Path) -> Path:
    """A small store (24 patients x 2 clips x 3 frames, 64x64) built once per test session under ``base``."""
    path = base / "gan-phantom-store"
    if not (path / "header.json").is_file():
        make_phantom_store(path, patients=24, clips=2, frames=3)
    return path


def tiny_params(**overrides: object):  # type: ignore[no-untyped-def]
    """GanParams small enough for a unit test (seconds on one core)."""
    from lusynth.gan.params import GanParams

    base = dict(ngf=8, ndf=8, nz=16, epochs=4, batch_size=8, eval_every=2, n_eval=16, embedding_epochs=1)
    base.update(overrides)
    return GanParams(**base)  # type: ignore[arg-type]
