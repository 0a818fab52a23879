"""The paper's DCGAN (Yu et al. 2023, reference code Global-Health-Labs/US-DCGAN) and its family.

Pure: model definitions, initialisation and FLOP accounting; no IO.

At 256x256 (:meth:`DCGANConfig.paper`) the networks are exactly the paper's:

* G: 7 transposed 4x4 convolutions, channels ``nz -> ngf*32 -> ngf*16 -> ... -> ngf -> 1``,
  BatchNorm + ReLU after each but the last, tanh out.
* D: 7 4x4 convolutions ``1 -> ndf -> ... -> ndf*32 -> 1``, LeakyReLU(0.2), BatchNorm from the
  2nd layer on, Dropout(0.25) after each block.

The same family at 128 (6 layers) and 64 (5 layers) drops the widest layers, so the first
generator block has ``ngf * 2**(n_layers - 2)`` channels. Differences from the reference code,
all numerically equivalent or fixing a bug:

* D returns a **logit**; training uses ``BCEWithLogits`` (= sigmoid + BCE, but stable). Apply
  ``torch.sigmoid`` for the paper's probability output.
* Instance noise (variance ``instance_noise``) is added to D's input only when the variance is
  positive **and** D is in training mode. The reference's ``--noisyDiscriminator`` flag was
  parsed with ``type=bool`` so any value (even ``False``) switched it on, and it also perturbed
  evaluation-time scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from lusynth.models.fastcpu import FastDropout, LowResConv2d, LowResConvTranspose2d

__all__ = [
    "DCGANConfig",
    "Discriminator",
    "Generator",
    "count_params",
    "dcgan_init",
    "discriminator",
    "flops_per_image",
    "generator",
]

#: Supported image sizes and their number of (transposed) conv layers: 4x4 seed, doubled per layer.
LAYERS_FOR_SIZE = {64: 5, 128: 6, 256: 7}


@dataclass(frozen=True)
class DCGANConfig:
    """Shape of one generator/discriminator pair."""

    image_size: int = 64  # 64 | 128 | 256 (square, one channel)
    nz: int = 100  # latent size (paper: 100)
    ngf: int = 32  # generator width of the last hidden layer (paper: 64)
    ndf: int = 32  # discriminator width of the first layer (paper: 64)
    nc: int = 1  # image channels (grey ultrasound)
    dropout: float = 0.25  # after each D block (paper: 0.25)
    instance_noise: float = 0.0  # variance of Gaussian noise on D's input in training; 0 = off (paper option: 0.2)
    fast_cpu: bool = True  # CPU training kernels of lusynth.models.fastcpu (same layers and parameters); False = stock

    def __post_init__(self) -> None:
        if self.image_size not in LAYERS_FOR_SIZE:
            raise ValueError(f"image_size={self.image_size}: the DCGAN family supports {sorted(LAYERS_FOR_SIZE)}")
        for name in ("nz", "ngf", "ndf", "nc"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.instance_noise < 0:
            raise ValueError(f"instance_noise={self.instance_noise} is a variance and must be >= 0 (0 turns it off)")

    @property
    def n_layers(self) -> int:
        return LAYERS_FOR_SIZE[self.image_size]

    @classmethod
    def paper(cls, **overrides: object) -> DCGANConfig:
        """The paper's 256x256 network (ngf = ndf = 64, latent 100, dropout 0.25): the reference
        architecture the shape tests check. Training settings are the ``paper`` profile's, not here."""
        return replace(cls(image_size=256, nz=100, ngf=64, ndf=64, dropout=0.25), **overrides)  # type: ignore[arg-type]


class Generator(nn.Module):
    """z (B, nz, 1, 1) -> image (B, nc, S, S) in [-1, 1]."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n_layers
        layers: list[nn.Module] = []
        ch = cfg.ngf * 2 ** (n - 2)
        # first block: 1x1 -> 4x4 (stride 1, no padding)
        conv_t = LowResConvTranspose2d if cfg.fast_cpu else nn.ConvTranspose2d
        layers += [conv_t(cfg.nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        # state: (ngf * 2**(n-2)) x 4 x 4   [paper: (ngf*32) x 4 x 4]
        size = 4
        for _ in range(n - 2):
            layers += [conv_t(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
            size *= 2
            # state: ch x size x size   [paper: (ngf*16)x8x8, (ngf*8)x16x16, (ngf*4)x32x32, (ngf*2)x64x64, ngf x 128x128]
        layers += [conv_t(ch, cfg.nc, 4, 2, 1, bias=False), nn.Tanh()]
        # state: nc x S x S   [paper: 1 x 256 x 256]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """image (B, nc, S, S) in [-1, 1] -> real/fake logit (B,)."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n_layers
        layers: list[nn.Module] = []
        ch = cfg.ndf
        # input: nc x S x S   [paper: 1 x 256 x 256]
        conv, dropout = (LowResConv2d, FastDropout) if cfg.fast_cpu else (nn.Conv2d, nn.Dropout)
        layers += [conv(cfg.nc, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True), dropout(cfg.dropout)]
        # state: ndf x S/2 x S/2   [paper: ndf x 128 x 128]
        for _ in range(n - 2):
            layers += [
                conv(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.2, inplace=True),
                dropout(cfg.dropout),
            ]
            ch *= 2
            # state: ch x size/2 x size/2   [paper: (ndf*2)x64x64, (ndf*4)x32x32, (ndf*8)x16x16, (ndf*16)x8x8, (ndf*32)x4x4]
        layers += [conv(ch, 1, 4, 1, 0, bias=False)]
        # state: 1 x 1 x 1 (a logit; the paper's Sigmoid is folded into BCEWithLogits)
        self.main = nn.Sequential(*layers)
        self.noise_std = math.sqrt(cfg.instance_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Instance noise is a training-time regulariser only: off when the variance is 0, and never
        # in eval mode (membership-inference scores and fidelity checks must not be random).
        if self.training and self.noise_std > 0:
            x = x + self.noise_std * torch.randn_like(x)
        return self.main(x).view(-1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0. A conv
    under a weight parametrisation (FastGAN's spectral norm) gets its raw weight initialised."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            conv: Any = m  # torch's stubs do not type the parametrisation container
            nn.init.normal_(conv.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def generator(cfg: DCGANConfig) -> Generator:
    """A freshly DCGAN-initialised generator (uses the global torch RNG)."""
    g = Generator(cfg)
    dcgan_init(g)
    return g


def discriminator(cfg: DCGANConfig) -> Discriminator:
    """A freshly DCGAN-initialised discriminator (uses the global torch RNG)."""
    d = Discriminator(cfg)
    dcgan_init(d)
    return d


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def flops_per_image(cfg: DCGANConfig) -> dict[str, float]:
    """FLOPs per image, counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 per MAC, convs
    and matmuls only; BatchNorm/activations are not counted, as is usual for MFU).

    Keys: ``g_forward``, ``d_forward`` and ``train_step``: one step of the training loop per image
    (D on real: fwd+bwd; G fwd; D on detached fake: fwd+bwd; D on fake for the G loss: fwd + input
    gradients only, D's weights frozen; G bwd). Counted on batch 2 on the meta device, so nothing
    is allocated and no RNG is consumed.
    """
    from torch.utils.flop_counter import FlopCounterMode

    b = 2
    with torch.device("meta"):
        g, d = Generator(cfg), Discriminator(cfg)
        z = torch.zeros(b, cfg.nz, 1, 1)
        x = torch.zeros(b, cfg.nc, cfg.image_size, cfg.image_size)
    d.noise_std = 0.0  # noise would call randn; it adds no conv FLOPs anyway
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            g(z)
    g_fwd = fc.get_total_flops() / b
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            d(x)
    d_fwd = fc.get_total_flops() / b
    with FlopCounterMode(display=False) as fc:
        d(x).sum().backward()  # D on real
        fake = g(z)
        d(fake.detach()).sum().backward()  # D on fake
        for p in d.parameters():
            p.requires_grad_(False)
        d(fake).sum().backward()  # G loss through frozen D
    step = fc.get_total_flops() / b
    return {"g_forward": float(g_fwd), "d_forward": float(d_fwd), "train_step": float(step)}
