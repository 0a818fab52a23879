"""Training augmentations, pure torch on float frames in [0, 1].

The reference (``CNN/data_generator.py``) applies flip, gamma, box blur, sparse speckle noise and
identity, each with p = 0.5, in a random order, then standardises each image. Its bugs, fixed here:

- it worked on uint8 images: the speckle noise ``image[pix] + 10`` wraps around at 255 (bright
  pixels turn dark) before the clip, which then does nothing;
- the gamma lookup returned floats in [0, 1] while the other steps assumed 0..255, so an image
  that got gamma and then speckle noise received a +10 jump on a [0, 1] scale;
- box-blur kernels of 2 and 4 shift the image by half a pixel (here: odd kernels only).

Here every step maps [0, 1] floats to [0, 1] floats, so the order does not change the scale.
Randomness comes from an explicit ``torch.Generator``, so a seed reproduces a run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

N_AUGMENTATIONS = 5  # flip, gamma, blur, speckle, identity


def flip(x: torch.Tensor) -> torch.Tensor:
    """Left-right flip of (..., H, W)."""
    return torch.flip(x, dims=(-1,))


def gamma(x: torch.Tensor, g: float) -> torch.Tensor:
    """Gamma curve ``x ** g`` on [0, 1] (the reference's lookup table, in float)."""
    return x.clamp(0.0, 1.0).pow(g)


def box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k mean filter of (C, H, W) with reflected borders (odd k keeps the image in place)."""
    if k <= 1:
        return x
    pad = k // 2
    y = F.pad(x.unsqueeze(0), (pad, pad, pad, pad), mode="reflect")
    return F.avg_pool2d(y, k, stride=1).squeeze(0)


def speckle(x: torch.Tensor, *, fraction: float, delta: float, generator: torch.Generator) -> torch.Tensor:
    """Brighten a random ``fraction`` of pixels by ``delta``, clipped to 1 (no uint8 wrap-around)."""
    n = x.numel()
    k = int(n * fraction)
    if k == 0:
        return x
    # with replacement, as the reference's randint: a pixel may be drawn twice (+delta once)
    pix = torch.randint(0, n, (k,), generator=generator)
    y = x.flatten().clone()
    y[pix] = y[pix] + delta
    return y.clamp_(0.0, 1.0).view_as(x)


def augment_frame(
    x: torch.Tensor,
    *,
    generator: torch.Generator,
    p: float = 0.5,
    gammas: Sequence[float] = (0.7, 0.8, 0.9, 1.1, 1.2, 1.3),
    blur_kernels: Sequence[int] = (3, 5),
    speckle_fraction: float = 0.05,
    speckle_delta: float = 10.0 / 255.0,
) -> torch.Tensor:
    """Augment one frame (C, H, W) in [0, 1]: each of the 5 steps with probability ``p``, random order."""
    order = torch.randperm(N_AUGMENTATIONS, generator=generator).tolist()
    apply = (torch.rand(N_AUGMENTATIONS, generator=generator) < p).tolist()
    for step, on in zip(order, apply, strict=False):
        if not on:
            continue
        if step == 0:
            x = flip(x)
        elif step == 1 and gammas:
            x = gamma(x, float(gammas[int(torch.randint(len(gammas), (1,), generator=generator))]))
        elif step == 2 and blur_kernels:
            x = box_blur(x, int(blur_kernels[int(torch.randint(len(blur_kernels), (1,), generator=generator))]))
        elif step == 3:
            x = speckle(x, fraction=speckle_fraction, delta=speckle_delta, generator=generator)
        # step 4: identity
    return x


def augment_batch(x: torch.Tensor, *, generator: torch.Generator, **kwargs: object) -> torch.Tensor:
    """Augment each frame of (B, C, H, W) independently (see :func:`augment_frame`)."""
    return torch.stack([augment_frame(f, generator=generator, **kwargs) for f in x])  # type: ignore[arg-type]


#: added to the per-image std. 1e-3 (a quarter of a grey level on the [0, 1] scale) is far below
#: any ultrasound frame's std, and keeps a flat frame (std 0) well-conditioned: with 1e-6 the
#: float32 rounding of its mean was amplified a million-fold, and onnxruntime and PyTorch, which
#: sum in different orders, disagreed by 0.016 in probability on a flat frame.
STD_EPS = 1e-3


def standardize(x: torch.Tensor, eps: float = STD_EPS) -> torch.Tensor:
    """Per-image standardisation of (B, C, H, W): zero mean, unit std; a flat image becomes exactly 0.

    Standardisation does not depend on a constant shift, so each image is first shifted by its
    first pixel: a flat frame is then exactly zero before the mean is taken, instead of carrying
    the mean's rounding error divided by ``eps`` (which made onnxruntime and PyTorch disagree by
    ~1e-4 in probability on a blank frame: two frameworks round a mean differently).
    """
    dims = tuple(range(1, x.dim()))
    x = x - x[(slice(None),) + (slice(0, 1),) * (x.dim() - 1)]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


def to_float(frames_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) -> float32 (B, 1, H, W) in [0, 1]."""
    return frames_u8.to(torch.float32).div_(255.0).unsqueeze(1)
