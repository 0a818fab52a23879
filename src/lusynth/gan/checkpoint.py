"""GAN checkpoints: atomic save/load with RNG state, and loading trained networks for others.

Layout of a ``train-gan`` output directory (see :mod:`lusynth.gan.train`)::

    checkpoints/last.pt          full training state for --resume (models, optimisers, EMA, RNG, step)
    checkpoints/step_%08d.pt     weights at an evaluation (G, EMA G, D), kept for selection
    chosen.json                  names the chosen step_*.pt and the rule that chose it

Files are written through a temporary file and ``os.replace``: a kill leaves the previous
complete checkpoint. All files load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from lusynth.atomic import atomic_write_bytes
from lusynth.errors import InputError
from lusynth.gan.families import NetConfig, config_from_dict, empty_discriminator, empty_generator
from lusynth.models.fastgan import FastGANConfig, fold_spectral_norm

__all__ = [
    "CHECKPOINT_DIR",
    "CHOSEN_FILE",
    "LAST_FILE",
    "checkpoint_path",
    "get_rng_state",
    "load_checkpoint",
    "discriminator_scorer",
    "load_discriminator",
    "load_generator",
    "save_checkpoint",
    "set_rng_state",
    "step_file",
]

CHECKPOINT_DIR = "checkpoints"
LAST_FILE = "last.pt"
CHOSEN_FILE = "chosen.json"


def step_file(step: int) -> str:
    return f"step_{step:08d}.pt"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Serialise ``state`` in memory, then write it atomically (temp file + fsync + rename)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors, numbers, strings only)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found; run `lusynth train-gan` (or check --which)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise InputError(f"{path}: not a readable lusynth checkpoint ({exc}); delete it and re-run train-gan") from exc


def get_rng_state() -> dict[str, Any]:
    """Every RNG the training loop may touch: torch CPU (+ CUDA), numpy global, python ``random``."""
    np_state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())  # legacy=True: the tuple form
    state: dict[str, Any] = {
        "torch": torch.random.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured."""
    torch.random.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(gan_dir: str | os.PathLike[str], which: str = "chosen") -> Path:
    """Resolve ``which`` ('chosen', 'last' or an evaluated step number) to a checkpoint file."""
    gan_dir = Path(gan_dir)
    ck = gan_dir / CHECKPOINT_DIR
    if which == "chosen":
        chosen = gan_dir / CHOSEN_FILE
        if not chosen.is_file():
            raise InputError(f"{gan_dir}: no {CHOSEN_FILE}; the GAN run did not finish, run `lusynth train-gan --resume`")
        return gan_dir / json.loads(chosen.read_text())["checkpoint"]
    if which == "last":
        return ck / LAST_FILE
    if str(which).isdigit():
        p = ck / step_file(int(which))
        if not p.is_file():
            kept = sorted(x.name for x in ck.glob("step_*.pt"))
            raise InputError(f"{gan_dir}: no checkpoint for step {which}; kept: {', '.join(kept) or 'none'}")
        return p
    raise InputError(f"which={which!r}: use 'chosen', 'last' or an evaluated step number")


def _config(state: dict[str, Any], path: Path) -> NetConfig:
    """The network config a checkpoint records (its ``family``; none = a DCGAN's, written before FastGAN)."""
    try:
        return config_from_dict(state["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the checkpoint's network config is unreadable ({exc}); re-run train-gan") from exc


def _for_inference(net: torch.nn.Module, cfg: NetConfig) -> torch.nn.Module:
    """Eval mode; FastGAN's spectral norms folded into the weights (the same outputs as in eval mode, a plain graph)."""
    return fold_spectral_norm(net) if isinstance(cfg, FastGANConfig) else net.eval()


def load_generator(gan_dir: str | os.PathLike[str], which: str = "chosen") -> tuple[torch.nn.Module, NetConfig]:
    """The generator of a trained GAN of either family in eval mode (the EMA copy when training kept
    one) + its config (``cfg.nz``, ``cfg.image_size``; the family: :func:`lusynth.gan.families.family_of`).
    It maps latents (N, nz, 1, 1) to frames (N, 1, S, S) in [-1, 1]."""
    path = checkpoint_path(gan_dir, which)
    state = load_checkpoint(path)
    cfg = _config(state, path)
    g = empty_generator(cfg)
    g.load_state_dict(state.get("generator_ema") or state["generator"])
    return _for_inference(g, cfg), cfg


def load_discriminator(gan_dir: str | os.PathLike[str], which: str = "chosen") -> tuple[torch.nn.Module, NetConfig]:
    """The discriminator in eval mode (no dropout, no instance noise, no reconstructions) + config.
    It returns logits, higher = 'real': the DCGAN's (N,), one per image (``torch.sigmoid`` gives the
    paper's probability of 'real'); FastGAN's (N, 1) hinge logits."""
    path = checkpoint_path(gan_dir, which)
    state = load_checkpoint(path)
    cfg = _config(state, path)
    d = empty_discriminator(cfg)
    d.load_state_dict(state["discriminator"])
    return _for_inference(d, cfg), cfg


def discriminator_scorer(gan_dir: str | os.PathLike[str]) -> Any:
    """The chosen checkpoint's D (either family) as a function: uint8 frames (N, S, S) -> D's logit
    per frame (higher = 'real'), batched; for the discriminator membership attack."""
    d, _ = load_discriminator(gan_dir)

    @torch.no_grad()
    def score(frames: Any) -> Any:
        out = []
        for i in range(0, len(frames), 256):
            x = torch.from_numpy(np.asarray(frames[i : i + 256], dtype=np.float32)).unsqueeze(1) / 127.5 - 1.0  # [-1, 1]
            out.append(d(x).reshape(len(x), -1)[:, 0].double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    return score
