"""A small embedding network for fidelity features, trained by the project (no downloaded weights).

The paper measured MMD and 1-NN accuracy in ImageNet ResNet-34 features; no weights can be
downloaded here, so the project trains its own feature extractor on the real *training* frames.

Design: a 4-stage CNN encoder (strided 3x3 convs, BatchNorm, ReLU; widths 16-32-64-64) trained
as an **autoencoder with an auxiliary class head**. The reconstruction loss makes the features
describe the whole image (texture, sector shape, pleural line, artefacts), not only what
separates the two classes; the class head (cross-entropy on the training labels, weight 0.1)
makes class-relevant structure prominent. The embedding is the concatenation of each stage's
global-average-pooled activations (16+32+64+64 = 176 dims) plus the bottleneck (64 dims), then
L2-normalised, so distances are not dominated by one stage. Multi-scale pooled features are the
same idea as perceptual / FID features, at a size that trains in seconds on a CPU.

Pure computation: :func:`fit_embedding` takes arrays and returns a module; saving is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lusynth.models.fastcpu import FastBatchNorm2d
from lusynth.runtime import warm_mkl_vml

__all__ = ["EmbeddingConfig", "EmbeddingNet", "embed", "fit_embedding"]


@dataclass(frozen=True)
class EmbeddingConfig:
    """Shape and training of the fidelity embedding."""

    input_size: int = 64  # frames are resized to this before encoding (keeps 256 cheap)
    widths: tuple[int, ...] = (16, 32, 64, 64)
    bottleneck: int = 64
    n_classes: int = 2
    epochs: int = 6
    batch_size: int = 32
    lr: float = 2e-3
    class_weight: float = 0.1  # weight of the auxiliary cross-entropy next to reconstruction


class EmbeddingNet(nn.Module):
    """Encoder + decoder + class head; :meth:`features` is the embedding."""

    def __init__(self, cfg: EmbeddingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        stages = []
        ch_in = 1
        for w in cfg.widths:
            stages.append(nn.Sequential(nn.Conv2d(ch_in, w, 3, 2, 1), FastBatchNorm2d(w), nn.ReLU(True)))
            ch_in = w
        self.stages = nn.ModuleList(stages)  # input_size -> input_size / 2**len(widths)
        self.side = cfg.input_size // 2 ** len(cfg.widths)
        self.to_code = nn.Linear(ch_in * self.side * self.side, cfg.bottleneck)
        self.from_code = nn.Linear(cfg.bottleneck, ch_in * self.side * self.side)
        dec: list[nn.Module] = []
        widths = list(cfg.widths)[::-1]
        for w_in, w_out in zip(widths, widths[1:] + [8], strict=True):
            dec += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), FastBatchNorm2d(w_out), nn.ReLU(True)]
        dec += [nn.Conv2d(8, 1, 3, 1, 1), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)
        self.classify = nn.Linear(cfg.bottleneck, cfg.n_classes)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.cfg.input_size:
            x = F.interpolate(x, size=(self.cfg.input_size, self.cfg.input_size), mode="area")
        return x

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        pooled = []
        h = self._prep(x)
        for stage in self.stages:
            h = stage(h)
            pooled.append(h.mean(dim=(2, 3)))
        code = self.to_code(h.flatten(1))
        return pooled, code

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [-1, 1] (B,1,S,S) -> (reconstruction at input_size, class logits)."""
        _, code = self._encode(x)
        h = self.from_code(F.relu(code)).view(-1, self.cfg.widths[-1], self.side, self.side)
        return self.decoder(h), self.classify(code)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised multi-scale embedding (B, sum(widths) + bottleneck)."""
        pooled, code = self._encode(x)
        return F.normalize(torch.cat(pooled + [code], dim=1), dim=1)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N,S,S) -> float (N,1,S,S) in [-1, 1], the GAN's pixel range."""
    return torch.from_numpy(np.asarray(frames, dtype=np.float32)).unsqueeze(1) / 127.5 - 1.0


def fit_embedding(
    frames: np.ndarray,
    labels: np.ndarray,
    *,
    cfg: EmbeddingConfig | None = None,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> EmbeddingNet:
    """Train the embedding on uint8 frames (N,S,S) with integer class labels; returns it in eval mode.

    Deterministic for a seed on one machine and thread count, in every process: uses its own
    ``torch.Generator`` for init order and shuffling, restores the global RNG state afterwards so
    the caller's stream is untouched, and resolves MKL's vector-math dispatch first
    (:func:`lusynth.runtime.warm_mkl_vml`: otherwise the first multi-threaded ``tanh``/``sqrt`` of
    a process could run a low-accuracy kernel, and processes disagreed at 2 threads).
    """
    cfg = cfg or EmbeddingConfig(n_classes=int(max(2, int(np.max(labels)) + 1)))
    if len(frames) < 2:
        raise ValueError(f"fit_embedding: need at least 2 training frames, got {len(frames)}")
    if len(labels) != len(frames):
        raise ValueError(f"fit_embedding: {len(frames)} frames but {len(labels)} labels")
    warm_mkl_vml()
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        net = EmbeddingNet(cfg).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack memory_format
        gen = torch.Generator().manual_seed(seed)
        x_all = _to_tensor(frames)
        y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        net.train()
        for epoch in range(cfg.epochs):
            perm = torch.randperm(len(x_all), generator=gen)
            total = 0.0
            for i in range(0, len(perm), cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                if len(idx) < 2:  # BatchNorm needs 2 samples
                    continue
                x = x_all[idx].contiguous(memory_format=torch.channels_last)
                recon, logits = net(x)
                target = F.interpolate(x, size=recon.shape[-2:], mode="area") if x.shape[-1] != recon.shape[-1] else x
                loss = F.mse_loss(recon, target) + cfg.class_weight * F.cross_entropy(logits, y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            if progress is not None:
                progress(epoch, total / len(x_all))
    finally:
        torch.random.set_rng_state(state)
    # trained channels_last (oneDNN's 8 -> 1 conv at 64x64 is 4.7x faster so; FastBatchNorm2d keeps the
    # 8-16-channel BatchNorms fast there), used contiguous: the layout a reloaded state dict gets, so a
    # resumed GAN's features are bit-identical to the first run's
    return net.to(memory_format=torch.contiguous_format).eval()


@torch.no_grad()
def embed(net: EmbeddingNet, frames: np.ndarray | torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Features (N, d) float32 for uint8 frames (N,S,S) or a float tensor (N,1,S,S) in [-1, 1]."""
    net.eval()
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(frames), batch_size):
        chunk = frames[i : i + batch_size]
        x = chunk if isinstance(chunk, torch.Tensor) else _to_tensor(chunk)
        out.append(net.features(x.to(device=device, dtype=torch.float32)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, sum(net.cfg.widths) + net.cfg.bottleneck), np.float32)
