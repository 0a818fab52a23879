"""Small real models for the export, registry and serving tests.

``train_tiny_classifier`` trains a narrow classifier for one epoch on a phantom store (a few
seconds); ``write_gan_dir`` writes a GAN directory in :mod:`lusynth.gan.checkpoint`'s layout with a
freshly initialised narrow generator (training one takes minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lusynth.atomic import atomic_write_json
from lusynth.classifier.params import ClassifierParams
from lusynth.classifier.train import train_classifier
from lusynth.gan.checkpoint import CHECKPOINT_DIR, CHOSEN_FILE, save_checkpoint, step_file
from lusynth.models.dcgan import DCGANConfig, discriminator, generator
from lusynth.params import as_dict
from lusynth.runtime import RunContext
from tests.classifier import write_real_store


def real_store(root: Path, patients: int = 12) -> Path:
    """A phantom real store (cached per path)."""
    path = root / "real"
    if not path.exists():
        write_real_store(path, patients=patients)
    return path


def train_tiny_classifier(real: Path, out: Path, *, arm: str = "real", seed: int = 0, synthetic: tuple[Path, ...] = ()) -> Path:
    """One epoch, width 1: a real classifier directory in seconds."""
    params = ClassifierParams(trials=1, steps=12, eval_every=12, width=1)
    train_classifier(real, out, arm=arm, fraction=1.0, seed=seed, synthetic_dirs=synthetic, params=params, progress=False,
                     ctx=RunContext(track=False, device="cpu"))
    return out


def write_gan_dir(out: Path, *, label: str, fraction: float = 1.0, frames_digest: str = "sha256:test", seed: int = 0) -> Path:
    """A GAN directory whose chosen checkpoint holds a DCGAN-initialised 64x64 generator (ngf 8)."""
    cfg = DCGANConfig(image_size=64, nz=16, ngf=8, ndf=8)
    torch.manual_seed(seed)
    g, d = generator(cfg), discriminator(cfg)
    ck = f"{CHECKPOINT_DIR}/{step_file(10)}"
    (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / ck, {"config": as_dict(cfg), "step": 10, "epoch": 1, "generator": g.state_dict(),
                               "discriminator": d.state_dict(), "generator_ema": None})
    atomic_write_json(out / CHOSEN_FILE, {"checkpoint": ck, "step": 10, "epoch": 1})
    atomic_write_json(out / "gan.json", {"label": label, "fraction": fraction, "frames_digest": frames_digest,
                                         "mlflow_run_id": None, "config": as_dict(cfg),
                                         "chosen": {"checkpoint": ck, "step": 10, "epoch": 1, "metrics": {}}})
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
