"""The generator families the GAN stage trains (``gan.generator``, :data:`lusynth.gan.params.GENERATORS`).

Per family: its network config from the stage's parameters and the frame size, the networks and
optimisers training starts from, the training step, the (uninitialised) networks a checkpoint is
loaded into, FLOP counts and a one-line description for exports and model cards. Pure: no I/O.

* ``dcgan``: the paper's network and loop, :mod:`lusynth.models.dcgan` + :mod:`lusynth.gan.step`
  (unchanged; every DCGAN knob of :class:`~lusynth.gan.params.GanParams` applies).
* ``fastgan``: FastGAN-lite, :mod:`lusynth.models.fastgan` (its own step: hinge loss and D's
  self-supervised reconstruction); ``fastgan_width`` / ``fastgan_recon_weight`` / ``fastgan_downscale``
  shape it, ``fastgan_lr`` is its Adam learning rate (G and D), and the other optimisation knobs (batch,
  betas, DiffAugment, EMA, precision) and the CPU layout and optimiser (``channels_last``, ``fast_cpu``'s
  fused Adam) are shared.

A checkpoint's and ``gan.json``'s ``config`` records the family under ``family``
(:func:`config_dict`); a config without it was written before FastGAN existed and is a DCGAN's.
Both generators take latents (N, nz, 1, 1) (FastGAN's also (N, nz)) and return (N, 1, S, S) in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from lusynth.gan.params import GENERATORS, GanParams
from lusynth.models import fastgan
from lusynth.models.dcgan import LAYERS_FOR_SIZE, DCGANConfig, Discriminator, Generator
from lusynth.models.dcgan import flops_per_image as dcgan_flops
from lusynth.params import as_dict

__all__ = [
    "ARCHITECTURES",
    "architecture",
    "NetConfig",
    "build_networks",
    "config_dict",
    "config_from_dict",
    "empty_discriminator",
    "empty_generator",
    "family_of",
    "fit_problem",
    "flops_per_image",
    "image_sizes",
    "network_config",
    "step_function",
]

NetConfig = DCGANConfig | fastgan.FastGANConfig

#: what an exported generator's metadata and model card say the network is
ARCHITECTURES = {
    "dcgan": "Unconditional DCGAN generator (Yu et al. 2023)",
    "fastgan": ("Unconditional FastGAN-lite generator (Liu et al. 2021: skip-layer excitation, trained against a "
                "self-supervised discriminator; lusynth.models.fastgan)"),
}
assert set(ARCHITECTURES) == set(GENERATORS)


def architecture(cfg: NetConfig) -> str:
    """What an export's metadata and model card say the network is: the family's line, and for a
    downscaled FastGAN-lite the size it works at (its frames' finest detail is interpolated)."""
    text = ARCHITECTURES[family_of(cfg)]
    if isinstance(cfg, fastgan.FastGANConfig) and cfg.downscale > 1:
        w, s = cfg.work_size, cfg.image_size
        text += f"; G and D work at {w}x{w} and G's frames are bilinearly upsampled to {s}x{s} (downscale {cfg.downscale})"
    return text


def image_sizes(family: str) -> tuple[int, ...]:
    """Frame sizes the family supports."""
    return tuple(sorted(LAYERS_FOR_SIZE)) if family == "dcgan" else fastgan.IMAGE_SIZES


def fit_problem(params: GanParams, image_size: int, family: str) -> str | None:
    """Why ``family`` with ``params`` cannot train on ``image_size`` frames (one line naming the
    parameter and the fix), or None when it can. The trainer asks this of its frame store, and run
    planning asks it of ``ingest.image_size`` before anything starts (:func:`lusynth.experiment.check_run`)."""
    if image_size not in image_sizes(family):
        return (f"image size {image_size}: the {family} family supports {list(image_sizes(family))} "
                "(re-ingest with --image-size, or set ingest.image_size)")
    if family == "fastgan" and image_size // params.fastgan_downscale < fastgan.MIN_WORK_SIZE:
        work = image_size // params.fastgan_downscale
        return (f"gan.fastgan_downscale={params.fastgan_downscale}: {image_size}x{image_size} frames would leave FastGAN-lite's "
                f"G and D {work}x{work}, below its {fastgan.MIN_WORK_SIZE}x{fastgan.MIN_WORK_SIZE}; set a smaller "
                "gan.fastgan_downscale or re-ingest with a larger --image-size")
    return None


def network_config(params: GanParams, image_size: int, family: str = "dcgan") -> NetConfig:
    """The network shape of ``family`` that ``params`` ask for at ``image_size``."""
    if family not in GENERATORS:
        raise ValueError(f"generator family {family!r} is not one of {list(GENERATORS)}")
    problem = fit_problem(params, image_size, family)
    if problem:
        raise ValueError(problem)
    if family == "fastgan":
        return fastgan.FastGANConfig(image_size=image_size, nz=params.nz, ngf=params.fastgan_width, ndf=params.fastgan_width,
                                     recon_weight=params.fastgan_recon_weight, downscale=params.fastgan_downscale)
    return DCGANConfig(image_size=image_size, nz=params.nz, ngf=params.ngf, ndf=params.ndf, dropout=params.dropout,
                       instance_noise=params.instance_noise, fast_cpu=params.fast_cpu)


def family_of(cfg: NetConfig) -> str:
    """``dcgan`` or ``fastgan``."""
    return "fastgan" if isinstance(cfg, fastgan.FastGANConfig) else "dcgan"


def config_dict(cfg: NetConfig) -> dict[str, Any]:
    """The config as checkpoints and ``gan.json`` store it: the family, then the fields."""
    return {"family": family_of(cfg), **as_dict(cfg)}


def config_from_dict(config: Mapping[str, Any]) -> NetConfig:
    """Inverse of :func:`config_dict`; a config without ``family`` (written before FastGAN) is a DCGAN's."""
    fields = dict(config)
    family = fields.pop("family", "dcgan")
    if family == "fastgan":
        return fastgan.FastGANConfig(**fields)
    if family == "dcgan":
        return DCGANConfig(**fields)
    raise ValueError(f"generator family {family!r} is not one of {list(GENERATORS)}")


def build_networks(cfg: NetConfig, params: GanParams, device: str
                   ) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, torch.memory_format]:
    """G, D (initialised from the global torch RNG), their Adam optimisers and the memory layout of training."""
    from lusynth.gan.step import build_networks as dcgan_networks
    from lusynth.gan.step import for_training

    if isinstance(cfg, fastgan.FastGANConfig):
        # the DCGAN's CPU layout and optimiser (channels_last, fused Adam: 10-20 % more steps per CPU second,
        # benchmarks/results/README.md); G before D from the global RNG
        g, d = fastgan.generator(cfg), fastgan.discriminator(cfg)
        return for_training(g, d, params, lr_g=params.fastgan_lr, lr_d=params.fastgan_lr, device=device)
    return dcgan_networks(cfg, params, device)


def step_function(cfg: NetConfig) -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The family's training step (:func:`lusynth.gan.step.train_step`'s signature)."""
    if isinstance(cfg, fastgan.FastGANConfig):
        return fastgan.train_step
    from lusynth.gan.step import train_step

    return train_step


def empty_generator(cfg: NetConfig) -> nn.Module:
    """An uninitialised G of the family, for loading a checkpoint's weights into."""
    return fastgan.FastGANGenerator(cfg) if isinstance(cfg, fastgan.FastGANConfig) else Generator(cfg)


def empty_discriminator(cfg: NetConfig) -> nn.Module:
    """An uninitialised D of the family (FastGAN's with its reconstruction decoders), for loading weights into."""
    return fastgan.FastGANDiscriminator(cfg) if isinstance(cfg, fastgan.FastGANConfig) else Discriminator(cfg)


def flops_per_image(cfg: NetConfig) -> dict[str, float]:
    """``g_forward``, ``d_forward`` and ``train_step`` FLOPs per image of the family's networks and step."""
    return fastgan.flops_per_image(cfg) if isinstance(cfg, fastgan.FastGANConfig) else dcgan_flops(cfg)
