"""Differentiable augmentation (DiffAugment; Zhao et al., NeurIPS 2020) for data-efficient GANs.

The same random, differentiable transform is applied to every image D sees, real and fake, in
both the D and the G step, so D cannot overfit a few hundred frames while G still receives
gradients through the transform. Implemented from the paper's description for one-channel
images (the colour op is brightness + contrast; saturation has no meaning in grey). Randomness
comes from the global torch RNG, which the checkpoint saves, so resumed runs stay exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["diff_augment", "parse_policy"]


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' -> () (off)."""
    return tuple(p.strip() for p in policy.split(",") if p.strip())


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    # brightness: add U(-0.5, 0.5); contrast: scale deviations from the mean by U(0.5, 1.5)
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (mid-grey)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    # gather from a zero-padded copy: output (i, j) reads padded (i + sh - ty, j + sw - tx)
    iy = (torch.arange(h, device=x.device).view(1, h, 1) + sh - ty).expand(b, h, w)
    ix = (torch.arange(w, device=x.device).view(1, 1, w) + sw - tx).expand(b, h, w)
    padded = F.pad(x, (sw, sw, sh, sh))
    flat = padded.flatten(2)  # (b, c, (h+2sh)(w+2sw))
    index = (iy * (w + 2 * sw) + ix).flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1)
    return flat.gather(2, index).view_as(x)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of side ``ratio * size`` per image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy).abs() <= ch // 2) & ((xs - cx).abs() <= cw // 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the ops of ``policy`` in order; the identity when ``policy`` is empty."""
    for op in policy:
        x = _OPS[op](x)
    return x
