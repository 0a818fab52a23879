"""FastGAN-lite: a few-shot GAN (Liu et al., ICLR 2021, "Towards Faster and Stabilized GAN Training
for High-fidelity Few-shot Image Synthesis") sized for small grey ultrasound frames.

Pure: networks, initialisation and one training step; no I/O, no downloaded weights, plain torch.

What is the paper's (official code ``odegeasslbc/FastGAN-pytorch``, ``models.py`` / ``train.py``):

* **G**: latent -> 4x4 by a transposed 4x4 conv + BatchNorm + GLU; then ``UpBlock`` s (nearest
  x2 upsampling, 3x3 conv to twice the channels, BatchNorm, GLU) up to the image size, and
  **skip-layer excitation** (SLE): a low-resolution map (r/8) gates the channels of the map at
  resolution r (``SEBlock``: adaptive-avg-pool to 4x4, 4x4 conv, Swish, 1x1 conv, sigmoid, times
  the high-resolution map); a 3x3 conv + tanh makes the image. Channel widths follow the paper's
  ``nfc`` table (multipliers of ``ngf`` per resolution).
* **D**: a 4x4 stride-2 conv + LeakyReLU, then ``DownBlockComp`` s (a 4x4 stride-2 conv branch and
  an avg-pool + 1x1 conv shortcut, averaged), SLE between its resolutions, and a 1x1 + 4x4 conv
  head giving patch logits. **Self-supervised reconstruction**: on real frames two small decoders
  reconstruct (a) the whole frame, downsampled to 32x32, from the 8x8 feature map and (b) one
  random quadrant of the frame (at 32x32) from the same quadrant of the 16x16 map; their
  loss is added to D's real loss, so D must keep features that describe the image (the paper's
  remedy for D overfitting on 100-1000 images).
* **Loss**: hinge with the official code's randomised margin (real: ``relu(U(0.8, 1) - D(x))``,
  fake: ``relu(U(0.8, 1) + D(G(z)))``; G: ``-D(G(z))``); Adam(0.5, 0.999); spectral norm on
  every convolution of G and D, as the official code wraps ``nn.Conv2d``.

What differs, and why:

* The reconstruction loss is **L1** between decoder output and target (the paper uses LPIPS,
  which needs downloaded VGG/AlexNet weights; lusynth downloads nothing).
* No noise injection in G (the official ``UpBlockComp``): a random op inside G would make samples
  from fixed latents random and the ONNX generator non-deterministic. Every block is the plain
  ``UpBlock`` ("lite").
* One output resolution: D sees only the full-size image (the official D also takes a 128x128
  copy through a second small branch; at 64x64 there is nothing to gain).
* Augmentation is the project's DiffAugment (:func:`lusynth.gan.diffaugment.diff_augment`, the
  official code uses DiffAugment too); the reconstruction target is the augmented real frame,
  as in the official code.
* ``downscale`` (lusynth's, for CPU budgets; 1 = off): G and D work at ``image_size / downscale``;
  G's last layer makes a frame of that size, which is bilinearly upsampled to ``image_size``, and D
  area-averages every frame it is shown down to that size first (the reconstruction targets stay
  the full-size augmented frame, so D's decoders are asked for the same 32x32 images). At 64x64
  frames, 2 about halves a step's CPU (the 64x64 maps of G's last block and of D's stem are the
  largest single costs). Detail finer than 2 pixels then comes only from the interpolation: the
  frames keep about 0.4 of real frames' fine detail (:func:`lusynth.metrics.fidelity.sharpness`).

Interface as :mod:`lusynth.gan.step` for the DCGAN: ``G(z)`` takes ``z`` of shape (B, nz, 1, 1)
and returns (B, 1, S, S) in [-1, 1]; :func:`train_step` has the DCGAN step's signature and
returns (loss_d, loss_g, D on real, D on fake), so the trainer and benchmarks can call either.
All randomness (init, latents, augmentation, the quadrant) comes from the global torch RNG.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from lusynth.gan.diffaugment import diff_augment
from lusynth.gan.ema import EMA
from lusynth.gan.params import FASTGAN_DOWNSCALES
from lusynth.models.dcgan import dcgan_init

__all__ = [
    "FastGANConfig",
    "FastGANDiscriminator",
    "FastGANGenerator",
    "discriminator",
    "fastgan_init",
    "flops_per_image",
    "fold_spectral_norm",
    "generator",
    "train_step",
]

#: Channel multiplier of ``ngf`` / ``ndf`` per resolution: the official code's ``nfc`` table.
NFC = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}
IMAGE_SIZES = (64, 128, 256)
MIN_WORK_SIZE = 32  # D's reconstruction decoders need its 16x16 and 8x8 maps


@dataclass(frozen=True)
class FastGANConfig:
    """Shape of one FastGAN-lite generator/discriminator pair and the weight of D's self-supervision."""

    image_size: int = 64  # 64 | 128 | 256 (square, one channel)
    nz: int = 100  # latent size (official: 256; 100 as the DCGAN so the same latents fit both)
    # width units: channels at resolution r are ngf * NFC[r] (official: 64 at 1024^2); 4 gave better fidelity
    # than 8 at the demo DCGAN's CPU budget (benchmarks/bench_generators.py, results/README.md)
    ngf: int = 4  # generator width unit
    ndf: int = 4  # discriminator width unit
    nc: int = 1  # image channels (grey ultrasound)
    recon_weight: float = 1.0  # weight of D's L1 reconstruction loss on real frames (official: 1 x LPIPS)
    # G generates and D judges at image_size / downscale; G's output is bilinearly upsampled to image_size and D
    # area-downsamples what it is shown. 1 = the paper's network at full size; 2 halves the cost of a step on the CPU
    # (no learned layer at 64x64), at the price of detail finer than 2 pixels (benchmarks/results/README.md)
    downscale: int = 1

    def __post_init__(self) -> None:
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size={self.image_size}: FastGAN-lite supports {list(IMAGE_SIZES)}")
        if self.downscale not in FASTGAN_DOWNSCALES or self.work_size < MIN_WORK_SIZE:
            raise ValueError(f"downscale={self.downscale}: must be one of {list(FASTGAN_DOWNSCALES)} and leave G and D at least "
                             f"{MIN_WORK_SIZE}x{MIN_WORK_SIZE} (image_size {self.image_size})")
        for name in ("nz", "ngf", "ndf", "nc"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.recon_weight < 0:
            raise ValueError(f"recon_weight={self.recon_weight} must be >= 0 (0 turns D's self-supervision off)")

    @property
    def work_size(self) -> int:
        """The side G generates and D judges at (``image_size // downscale``)."""
        return self.image_size // self.downscale

    def channels(self, width: int, resolution: int) -> int:
        """Channels at ``resolution`` for width unit ``width`` (at least 4: GLU halves, SLE pools)."""
        return max(4, int(width * NFC[resolution]))


def _conv(*args: Any, **kwargs: Any) -> nn.Module:
    """A spectrally normalised Conv2d (the official code's ``conv2d``)."""
    return spectral_norm(nn.Conv2d(*args, **kwargs))


class _GLU(nn.Module):
    """Gated linear unit over channels: first half times sigmoid(second half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


class _SEBlock(nn.Module):
    """Skip-layer excitation: a small map gates the channels of a large one."""

    def __init__(self, ch_small: int, ch_big: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), _conv(ch_small, ch_big, 4, 1, 0, bias=False), nn.SiLU(),
            _conv(ch_big, ch_big, 1, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.main(small)


def _up_block(ch_in: int, ch_out: int) -> nn.Sequential:
    """x2 nearest upsampling, 3x3 conv, BatchNorm, GLU (the official ``UpBlock``)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(ch_in, ch_out * 2, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(ch_out * 2), _GLU())


class FastGANGenerator(nn.Module):
    """z (B, nz, 1, 1) -> image (B, nc, S, S) in [-1, 1]; SLE from resolution r/8 into r for r >= 32."""

    def __init__(self, cfg: FastGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = {r: cfg.channels(cfg.ngf, r) for r in NFC}
        # the latent's transposed conv is spectrally normalised like every conv of the official G
        self.init = nn.Sequential(spectral_norm(nn.ConvTranspose2d(cfg.nz, ch[4] * 2, 4, 1, 0, bias=False)),
                                  nn.BatchNorm2d(ch[4] * 2), _GLU())
        self.resolutions = [2 ** k for k in range(3, cfg.work_size.bit_length())]  # 8, 16, ..., S / downscale
        self.ups = nn.ModuleList(_up_block(ch[r // 2], ch[r]) for r in self.resolutions)
        self.sle = nn.ModuleDict({str(r): _SEBlock(ch[r // 8], ch[r]) for r in self.resolutions if r >= 32})
        self.to_img = _conv(ch[cfg.work_size], cfg.nc, 3, 1, 1, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feats = {4: self.init(z.reshape(z.shape[0], self.cfg.nz, 1, 1))}
        for r, up in zip(self.resolutions, self.ups, strict=True):
            x = up(feats[r // 2])
            if str(r) in self.sle:
                x = self.sle[str(r)](feats[r // 8], x)
            feats[r] = x
        x = torch.tanh(self.to_img(feats[self.cfg.work_size]))
        if self.cfg.downscale > 1:  # no learned layer above work_size: bilinear upsampling (stays in [-1, 1])
            x = F.interpolate(x, size=(self.cfg.image_size, self.cfg.image_size), mode="bilinear", align_corners=False)
        return x


class _DownBlock(nn.Module):
    """Stride-2 conv branch + avg-pool shortcut, averaged (the official ``DownBlockComp``)."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            _conv(ch_in, ch_out, 4, 2, 1, bias=False), nn.BatchNorm2d(ch_out), nn.LeakyReLU(0.2),
            _conv(ch_out, ch_out, 3, 1, 1, bias=False), nn.BatchNorm2d(ch_out), nn.LeakyReLU(0.2),
        )
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), _conv(ch_in, ch_out, 1, 1, 0, bias=False), nn.BatchNorm2d(ch_out), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


class _Decoder(nn.Module):
    """Feature map (C, 8, 8) -> image (nc, 32, 32): the official ``SimpleDecoder``, two up-blocks shorter."""

    def __init__(self, ch_in: int, ch: int, nc: int) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.AdaptiveAvgPool2d(8), _up_block(ch_in, ch), _up_block(ch, ch),
                                  _conv(ch, nc, 3, 1, 1, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


#: Decoder output size: the 8x8 map is decoded to 32x32 (the official 8x8 -> 128x128 at 1024^2 input).
RECON_SIZE = 32


class FastGANDiscriminator(nn.Module):
    """image (B, nc, S, S) in [-1, 1] -> patch logits (B, k); :meth:`forward_with_recon` also
    returns the reconstructions of the whole image and of one quadrant."""

    def __init__(self, cfg: FastGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s = cfg.work_size
        ch = {r: cfg.channels(cfg.ndf, r) for r in NFC}
        self.stem = nn.Sequential(_conv(cfg.nc, ch[s // 2], 4, 2, 1, bias=False), nn.LeakyReLU(0.2))
        self.resolutions = [r for r in (2 ** k for k in range(s.bit_length() - 3, 1, -1))]  # S/4, ..., 8, 4
        self.downs = nn.ModuleList(_DownBlock(ch[r * 2], ch[r]) for r in self.resolutions)
        # SLE in D (official: 256 -> 16, 128 -> 8, 64 -> 4): a map at resolution 8r gates the one at r
        self.sle = nn.ModuleDict({str(r): _SEBlock(ch[r * 8], ch[r]) for r in self.resolutions if r * 8 <= s // 2})
        self.head = nn.Sequential(_conv(ch[4], ch[4] * 2, 1, 1, 0, bias=False), nn.BatchNorm2d(ch[4] * 2), nn.LeakyReLU(0.2),
                                  _conv(ch[4] * 2, 1, 4, 1, 0, bias=False))
        self.decoder_all = _Decoder(ch[8], max(4, cfg.ndf * 2), cfg.nc)
        self.decoder_part = _Decoder(ch[16], max(4, cfg.ndf * 2), cfg.nc)

    def _features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        if self.cfg.downscale > 1:  # D judges at work_size: area-average the frame down first
            x = F.interpolate(x, size=(self.cfg.work_size, self.cfg.work_size), mode="area")
        feats = {self.cfg.work_size // 2: self.stem(x)}
        for r, down in zip(self.resolutions, self.downs, strict=True):
            y = down(feats[r * 2])
            if str(r) in self.sle:
                y = self.sle[str(r)](feats[r * 8], y)
            feats[r] = y
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._features(x)[4]).flatten(1)

    def forward_with_recon(self, x: torch.Tensor, part: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, the whole image reconstructed from the 8x8 map, and quadrant ``part`` (0..3,
        row-major) reconstructed from that quadrant of the 16x16 map."""
        feats = self._features(x)
        f16 = feats[16]
        return self.head(feats[4]).flatten(1), self.decoder_all(feats[8]), self.decoder_part(_quadrant(f16, part))


def _quadrant(x: torch.Tensor, part: int) -> torch.Tensor:
    """Quadrant ``part`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of (B, C, H, W)."""
    h, w = x.shape[2] // 2, x.shape[3] // 2
    r, c = divmod(part, 2)
    return x[:, :, r * h : (r + 1) * h, c * w : (c + 1) * w]


def fastgan_init(module: nn.Module) -> None:
    """The official initialisation, which is the DCGAN's (conv weights N(0, 0.02), BatchNorm weight
    N(1, 0.02), bias 0), applied under spectral norm to the raw weight it normalises."""
    dcgan_init(module)


def generator(cfg: FastGANConfig) -> FastGANGenerator:
    """A freshly initialised FastGAN-lite generator (uses the global torch RNG)."""
    g = FastGANGenerator(cfg)
    fastgan_init(g)
    return g


def discriminator(cfg: FastGANConfig) -> FastGANDiscriminator:
    """A freshly initialised FastGAN-lite discriminator with its reconstruction decoders (global torch RNG)."""
    d = FastGANDiscriminator(cfg)
    fastgan_init(d)
    return d


def _recon_loss(real: torch.Tensor, rec_all: torch.Tensor, rec_part: torch.Tensor, part: int) -> torch.Tensor:
    """L1 between the decoders' outputs and the (augmented) real frame, downsampled / its quadrant."""
    target_all = F.interpolate(real, size=rec_all.shape[-2:], mode="area")
    target_part = F.interpolate(_quadrant(real, part), size=rec_part.shape[-2:], mode="area")
    return F.l1_loss(rec_all.float(), target_all.float()) + F.l1_loss(rec_part.float(), target_part.float())


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
    """One FastGAN step on real frames in [-1, 1] (B, 1, S, S): D (hinge + reconstruction on the
    real batch, hinge on a fake batch), then G (hinge), then the EMA of G. DiffAugment ``policy``
    is applied to every batch D sees. Returns (loss_d, loss_g, D logits on real, D logits on fake);
    the losses are float32 under bf16 ``autocast``. With ``recon_weight`` 0 the decoders are not run
    (the quadrant is still drawn, so the random stream is the same as with them)."""
    if not isinstance(d, FastGANDiscriminator):
        raise TypeError(f"fastgan.train_step needs a FastGANDiscriminator, got {type(d).__name__}")
    b = real.shape[0]
    part = int(torch.randint(0, 4, (1,)).item())  # the quadrant D reconstructs this step
    # (1) update D
    opt_d.zero_grad(set_to_none=True)
    recon = d.cfg.recon_weight > 0
    with autocast():
        real_aug = diff_augment(real, policy)
        if recon:
            out_real, rec_all, rec_part = d.forward_with_recon(real_aug, part)
        else:  # a zero-weighted loss adds nothing to D's gradients: skip the decoders (~15 % of a w4 step)
            out_real = d(real_aug)
        out_real = out_real.float()
        # the official hinge with a random margin in [0.8, 1]
        loss_real = F.relu(torch.rand_like(out_real) * 0.2 + 0.8 - out_real).mean()
        loss_recon = _recon_loss(real_aug, rec_all, rec_part, part) if recon else torch.zeros(())
        z = torch.randn(b, nz, 1, 1, device=real.device)
        fake = g(z)
        out_fake = d(diff_augment(fake.detach(), policy)).float()
        loss_fake = F.relu(torch.rand_like(out_fake) * 0.2 + 0.8 + out_fake).mean()
    loss_d = loss_real + loss_fake + d.cfg.recon_weight * loss_recon
    loss_d.backward()
    opt_d.step()
    # (2) update G: D's weights frozen (their gradients would be discarded)
    d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast():
        loss_g = -d(diff_augment(fake, policy)).float().mean()
    loss_g.backward()
    opt_g.step()
    d.requires_grad_(True)
    if ema is not None:
        ema.update(g)
    return loss_d.detach(), loss_g.detach(), out_real.detach(), out_fake.detach()


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every spectral-norm parametrisation by the normalised weight it gives in eval mode
    (``W / sigma`` with the stored power-iteration vectors): the same outputs without the per-call
    normalisation, and a plain graph for ONNX. For inference only (puts ``module`` in eval mode)."""
    module.eval()
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module


def flops_per_image(cfg: FastGANConfig) -> dict[str, float]:
    """FLOPs per image as :func:`lusynth.models.dcgan.flops_per_image` counts them (FlopCounterMode,
    convs and matmuls, 2 per MAC, batch 2 on the meta device): ``g_forward``, ``d_forward`` (the
    logits only) and ``train_step`` (:func:`train_step`: D with its reconstruction decoders on real (without
    them when ``recon_weight`` is 0),
    G forward, D on the detached fake, D on the fake for G's loss with D frozen, G backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    b = 2
    with torch.device("meta"):
        g, d = FastGANGenerator(cfg), FastGANDiscriminator(cfg)
        z = torch.zeros(b, cfg.nz, 1, 1)
        x = torch.zeros(b, cfg.nc, cfg.image_size, cfg.image_size)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        g(z)
    g_fwd = fc.get_total_flops() / b
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        d(x)
    d_fwd = fc.get_total_flops() / b
    with FlopCounterMode(display=False) as fc:
        if cfg.recon_weight > 0:
            logits, rec_all, rec_part = d.forward_with_recon(x, 0)
            (logits.sum() + rec_all.sum() + rec_part.sum()).backward()  # D on real, with reconstructions
        else:
            d(x).sum().backward()  # D on real: train_step skips the decoders of a zero-weighted loss
        fake = g(z)
        d(fake.detach()).sum().backward()  # D on fake
        d.requires_grad_(False)
        d(fake).sum().backward()  # G loss through frozen D
    step = fc.get_total_flops() / b
    return {"g_forward": float(g_fwd), "d_forward": float(d_fwd), "train_step": float(step)}
