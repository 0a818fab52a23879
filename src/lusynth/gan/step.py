"""One training step of the DCGAN, and the networks and sampling it needs: pure tensor code, no I/O.

A step is the paper's loop on one batch of real frames: (1) update D on the real batch and on a
fake batch from fresh latents (BCE, real -> 1, fake -> 0), then (2) update G with the
non-saturating loss (D's verdict on the same fakes, target 1). :func:`build_networks` makes the
Adam optimisers (the paper's betas 0.5, 0.999; separate learning rates for G and D). DiffAugment
(``policy``) is applied to every batch D sees, and an :class:`~lusynth.gan.ema.EMA` copy of G, if
given, is updated after G.

Style (``STYLE.md``): :func:`train_step` is a typed function whose two phases are labelled
("update D", "update G") as in pytorch/examples ``dcgan/main.py``; it takes tensors and modules
and returns tensors, so the trainer (:mod:`lusynth.gan.train`) and the benchmarks
(``benchmarks/bench_gan.py``, ``benchmarks/gpu_paper.py``) run exactly the same update.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lusynth.errors import LusynthError
from lusynth.gan.diffaugment import diff_augment
from lusynth.gan.ema import EMA
from lusynth.gan.params import GanParams
from lusynth.models.dcgan import DCGANConfig, discriminator, generator
from lusynth.models.fastcpu import ChannelsLastAdam

__all__ = ["NonFiniteLossError", "build_networks", "sample_frames", "train_step"]


class NonFiniteLossError(LusynthError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE on logits (= the paper's sigmoid + BCELoss, numerically stable); float32 under autocast."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _to_unit(frames_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B,S,S) -> float (B,1,S,S) in [-1, 1] (the reference's ToTensor + Normalize(0.5, 0.5))."""
    return frames_u8.unsqueeze(1).float().div_(127.5).sub_(1.0)


def _to_u8(x: torch.Tensor) -> np.ndarray:
    """G output (B,1,S,S) in [-1, 1] -> uint8 (B,S,S), as the frame store holds it."""
    return ((x.float()[:, 0] + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def sample_frames(g: torch.nn.Module, z: torch.Tensor, *, batch_size: int = 64, autocast: Any = nullcontext) -> np.ndarray:
    """uint8 frames from G in eval mode for latents ``z`` (n, nz, 1, 1); restores G's mode."""
    was_training = g.training
    g.eval()
    out = []
    try:
        for i in range(0, len(z), batch_size):
            with autocast():
                out.append(_to_u8(g(z[i : i + batch_size])))
    finally:
        g.train(was_training)
    return np.concatenate(out)


def train_step(
    g: torch.nn.Module,
    d: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    *,
    nz: int,
    policy: tuple[str, ...] = (),
    autocast: Any = nullcontext,
    ema: EMA | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the paper's loop on a batch of real frames in [-1, 1]; returns
    (loss_d, loss_g, D logits on real, D logits on fake). Also used by ``benchmarks/bench_gan.py``."""
    b = real.shape[0]
    # (1) update D: maximise log D(x) + log(1 - D(G(z)))
    opt_d.zero_grad(set_to_none=True)
    with autocast():
        out_real = d(diff_augment(real, policy))
        loss_real = _bce(out_real, 1.0)
        z = torch.randn(b, nz, 1, 1, device=real.device)
        fake = g(z)
        out_fake = d(diff_augment(fake.detach(), policy))
        loss_fake = _bce(out_fake, 0.0)
    loss_d = loss_real + loss_fake
    loss_d.backward()
    opt_d.step()
    # (2) update G: maximise log D(G(z)) (non-saturating). D's weights are frozen here: their
    # gradients would be discarded anyway (the paper's loop computes them), skipping saves compute.
    d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        loss_g = _bce(d(diff_augment(fake, policy)), 1.0)
    loss_g.backward()
    opt_g.step()
    d.requires_grad_(True)
    if ema is not None:
        ema.update(g)
    return loss_d.detach(), loss_g.detach(), out_real.detach(), out_fake.detach()


def build_networks(
    cfg: DCGANConfig, params: GanParams, device: str
) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, torch.memory_format]:
    """G, D (DCGAN-initialised from the global torch RNG) and their Adam optimisers, in the memory
    layout and with the kernels training uses; also used by ``benchmarks/bench_gan.py``.

    Fused Adam (one kernel over all parameters) on CUDA, and on the CPU with ``fast_cpu``
    (:class:`~lusynth.models.fastcpu.ChannelsLastAdam` there); with
    ``fast_cpu`` the layers are :mod:`lusynth.models.fastcpu`'s (``cfg.fast_cpu``)."""
    return for_training(generator(cfg), discriminator(cfg), params, lr_g=params.lr_g, lr_d=params.lr_d, device=device)


def for_training(g: torch.nn.Module, d: torch.nn.Module, params: GanParams, *, lr_g: float, lr_d: float, device: str
                 ) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, torch.memory_format]:
    """Either family's freshly built G and D on ``device`` in the training layout (NHWC with
    ``channels_last``), with their Adam(lr, ``params``' betas) optimisers: fused (one kernel over all
    parameters) on CUDA, and on the CPU with ``fast_cpu``, where
    :class:`~lusynth.models.fastcpu.ChannelsLastAdam` hands the kernel channels_last weights without copies."""
    memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
    g = g.to(device).to(memory_format=memory_format)  # type: ignore[call-overload]  # torch stubs lack memory_format
    d = d.to(device).to(memory_format=memory_format)  # type: ignore[call-overload]  # torch stubs lack memory_format
    fused = True if (params.fast_cpu or device.startswith("cuda")) else None
    adam = ChannelsLastAdam if (params.fast_cpu and not device.startswith("cuda")) else torch.optim.Adam
    opt_g = adam(g.parameters(), lr=lr_g, betas=(params.beta1, params.beta2), fused=fused)
    opt_d = adam(d.parameters(), lr=lr_d, betas=(params.beta1, params.beta2), fused=fused)
    return g, d, opt_g, opt_d, memory_format
