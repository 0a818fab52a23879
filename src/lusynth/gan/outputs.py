"""The files of a ``train-gan`` output directory that the trainer manages besides the checkpoints
(:mod:`lusynth.gan.checkpoint`) and the artefact (:mod:`lusynth.gan.run`): clearing a previous
run's outputs, checking that a ``last.pt`` may be continued, the fidelity embedding stored
there and the sample-grid PNGs. The directory's contract is in :mod:`lusynth.gan.train`.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lusynth.atomic import atomic_write_bytes
from lusynth.data.framestore import FrameStore
from lusynth.errors import InputError
from lusynth.gan.checkpoint import CHECKPOINT_DIR, CHOSEN_FILE, save_checkpoint
from lusynth.gan.params import GanParams
from lusynth.gan.run import GAN_FILE, HISTORY_FILE
from lusynth.models.embedding import EmbeddingConfig, EmbeddingNet, fit_embedding
from lusynth.params import as_dict

__all__ = ["EMBEDDING_FILE", "SAMPLES_DIR", "check_resumable", "clear_outputs", "embedding_net", "save_png"]

EMBEDDING_FILE = "embedding.pt"
SAMPLES_DIR = "samples"
_OUTPUTS = (CHECKPOINT_DIR, SAMPLES_DIR, EMBEDDING_FILE, CHOSEN_FILE, GAN_FILE, HISTORY_FILE)
# params that may change between a killed run and its resume without changing the result
_RESUME_FREE = ("keep_checkpoints", "checkpoint_seconds")
# the family joined the recorded params with FastGAN: a checkpoint without it is a DCGAN's
_DEFAULTS = {**as_dict(GanParams()), "generator": "dcgan"}


def clear_outputs(out_dir: Path) -> None:
    """Delete every output of a previous run in ``out_dir`` (a fresh start); other files stay."""
    for name in _OUTPUTS:
        p = out_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def embedding_net(store: FrameStore, idx: np.ndarray, params: GanParams, out_dir: Path, reuse: bool) -> EmbeddingNet:
    """Train (or, on resume, reload) the fidelity embedding on rows ``idx`` (all classes' training
    frames of the GAN's fold and fraction)."""
    path = out_dir / EMBEDDING_FILE
    if reuse and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        config: dict[str, Any] = {k: tuple(v) if k == "widths" else v for k, v in state["config"].items()}
        cfg = EmbeddingConfig(**config)
        net = EmbeddingNet(cfg)
        net.load_state_dict(state["weights"])
        return net.eval()
    labels = np.searchsorted(np.array(sorted(store.classes)), store.manifest["label"].to_numpy()[idx])
    cfg = EmbeddingConfig(n_classes=len(store.classes), epochs=params.embedding_epochs)
    net = fit_embedding(np.asarray(store.frames[idx]), labels, cfg=cfg, seed=params.seed)
    save_checkpoint(path, {"config": {**as_dict(cfg)}, "weights": net.state_dict()})
    return net


def check_resumable(state: dict[str, Any], store: FrameStore, label: str, fraction: float,
                    params_dict: dict[str, Any], path: Path, *, precision: str | None = None, fold: int = 0) -> None:
    """A checkpoint may only be continued with the same data, class, fraction and parameters, and in
    the same resolved ``precision`` (``auto`` may resolve differently on another machine)."""
    problems = []
    if state.get("frames_digest") != store.digest:
        problems.append(f"frames digest {state.get('frames_digest')} != {store.digest}")
    if state.get("label") != label or abs(float(state.get("fraction", -1)) - fraction) > 1e-9:
        problems.append(f"class/fraction {state.get('label')}/{state.get('fraction')} != {label}/{fraction}")
    if int(state.get("fold", 0) or 0) != fold:
        problems.append(f"fold {state.get('fold', 0)} != {fold}")
    # a field added since the checkpoint was written held its default then: that is what the older code did
    # (e.g. generator=dcgan before the FastGAN family existed)
    # and another family's own fields, which a record now leaves out (and older ones held), do not count
    old = {**_DEFAULTS, **dict(state.get("params", {}))}
    unused = set(_DEFAULTS) - set(params_dict)
    diff = sorted(k for k in (set(old) | set(params_dict)) - unused if k not in _RESUME_FREE and old.get(k) != params_dict.get(k))
    if diff:
        problems.append("params differ: " + ", ".join(f"{k}={old.get(k)!r}->{params_dict.get(k)!r}" for k in diff))
    if precision is not None and state.get("precision", "fp32") != precision:  # checkpoints before it: fp32 on CPU
        problems.append(f"precision {state.get('precision', 'fp32')} -> {precision} (set gan.precision to the checkpoint's)")
    if problems:
        raise InputError(f"{path}: cannot resume ({'; '.join(problems)}); re-run without --resume to start over")


def save_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 image (a sample grid) as PNG, atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
