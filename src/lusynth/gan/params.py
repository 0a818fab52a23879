"""Parameters of the GAN stages. Defaults are the ``demo`` profile; ``paper`` overrides live in
``profiles.yaml`` (256x256, ngf = ndf = 64, batch 16, lr 1e-5/5e-6, 200 epochs)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from lusynth.keys import GENERATORS  # the families are part of the task key (GanKey.generator)
from lusynth.params import as_dict, check, check_choices
from lusynth.runtime import PRECISIONS

__all__ = ["FAMILY_ONLY", "GENERATORS", "GanParams", "GenerateParams", "SELECTION_RULES", "family_fields", "family_param_names", "for_family"]

DIFFAUGMENT_OPS = ("color", "translation", "cutout")
SELECTION_RULES = ("nn1_embed", "nn1_pixels", "mmd_embed", "mmd_pixels", "last")
FASTGAN_DOWNSCALES = (1, 2, 4)  # lusynth.models.fastgan.FastGANConfig.downscale


@dataclass
class GanParams:
    """One unconditional GAN (the paper's DCGAN, or FastGAN-lite: the key's ``generator``) for one class at one training fraction."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"selection": SELECTION_RULES, "precision": PRECISIONS}

    # The family is not a field here: it is part of the task's key (GanKey.generator; `train-gan --generator`),
    # and the experiment's `generators` list fans the grid out over families, as over GAN seeds.
    # network (lusynth.models.dcgan.DCGANConfig); image_size must match the frame store
    ngf: int = 16  # generator width (paper: 64); demo 16: more frames per minute on 2 cores than 32
    ndf: int = 16  # discriminator width (paper: 64)
    nz: int = 100  # latent size (paper: 100)
    dropout: float = 0.25  # D dropout (paper: 0.25)
    instance_noise: float = 0.0  # variance of noise on D's input; 0 = off (paper option: 0.2)
    # FastGAN-lite's network (lusynth.models.fastgan.FastGANConfig); ngf, ndf, dropout and instance_noise are the
    # DCGAN's only (FastGAN takes channels_last and fast_cpu's fused Adam, not its custom layers). Width 4 gave
    # better fidelity than 8 at equal CPU (bench_generators.py)
    fastgan_width: int = 4  # FastGAN width unit, G and D (channels width x 16 at 4x4 down to x 2 at 64x64)
    fastgan_recon_weight: float = 1.0  # weight of FastGAN D's L1 self-supervised reconstruction loss; 0 = off
    # G and D work at image_size / fastgan_downscale, G's output upsampled (bilinear): 2 about halves a step's CPU.
    # Default 1: at the demo budget 2 read better on the phantom's embedding measures but kept ~0.4 of real frames'
    # fine detail (the DCGAN ~0.86) and was no better on POCUS (benchmarks/results/generators_downscale.json)
    fastgan_downscale: int = 1  # 1 = FastGAN at full size | 2 | 4 (G and D at least 32x32)
    # demo 1e-3: at the demo DCGAN's CPU budget a FastGAN trains ~250-280 steps, too few at the official 2e-4
    # (phantom 1-NN 0.71 vs 0.90, 4 seeds; the DCGAN did not gain from 1e-3: benchmarks/results/generators_tuning.json);
    # the paper profile (long GPU runs) uses the official 2e-4
    fastgan_lr: float = 1e-3  # FastGAN's Adam learning rate, G and D (official: 2e-4; the DCGAN's are lr_g/lr_d)
    # FastGAN-lite trains this share of the schedule below (its epochs and max_steps): the DCGAN's optimiser steps
    # cost a width-4 FastGAN 2.0-2.3x the DCGAN's CPU on 2 cores, so ~0.45 compares the families at about equal
    # compute (benchmarks/results/README.md)
    fastgan_step_share: float = 1.0  # FastGAN's share of epochs/max_steps: 1 = the DCGAN's steps (~2x its CPU here); ~0.45 = about its CPU
    # optimisation
    epochs: int = 100  # passes over the class's training frames (paper run: 200); demo: ~500 steps at ~80 frames
    # beyond ~240 training frames a capped run trains ceil(max_steps / batches per epoch) epochs, so one GAN's
    # cost stops growing with the data (the protocol trains folds x classes x fractions x seeds of them)
    max_steps: int = 1500  # cap on optimiser steps, whole epochs (0 = none: every epoch, as the paper)
    batch_size: int = 16  # paper: 16
    lr_g: float = 2e-4  # DCGAN G's Adam learning rate (paper: 1e-4, their run 1e-5; FastGAN: fastgan_lr)
    lr_d: float = 2e-4  # DCGAN D's Adam learning rate (paper: 5e-5, their run 5e-6)
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    # measured improvements (both off = the paper's loop)
    diffaugment: str = "translation,cutout"  # DiffAugment ops (color,translation,cutout; Zhao et al. 2020); "" = off
    ema_decay: float = 0.99  # EMA copy of G's weights; 0 = off
    # numerics and memory layout (the device is the run context's: lusynth.runtime.RunContext)
    # auto = bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else fp32. bf16: bf16 autocast,
    # float32 weights, optimiser state, BatchNorm statistics and losses (lusynth.runtime.autocast_for)
    # demo: auto since fp32 and bf16 matched within seed noise (3 seeds, phantom and POCUS:
    # benchmarks/bench_precision_quality.py, results/precision_quality.json); tiny pins fp32
    precision: str = "auto"
    channels_last: bool = True  # NHWC activations (oneDNN on CPU); speed-ups in benchmarks/results/README.md
    # CPU training fast paths (lusynth.models.fastcpu + fused Adam + glibc keeping freed memory): the same
    # network and maths, faster on CPU (benchmarks/bench_gan.py); False = stock PyTorch layers
    fast_cpu: bool = True
    # evaluation and selection
    eval_every: int = 10  # epochs between fidelity evaluations (also at epoch 0 and the last)
    n_eval: int = 200  # synthetic frames per evaluation (capped real side: all validation frames)
    selection: str = "nn1_embed"  # checkpoint rule: 1-NN closest to 0.5 in this space | lowest MMD^2 (mmd_*) | last
    max_memorisation_rate: float = 0.05  # a checkpoint with more near-copies than this is not eligible
    embedding_epochs: int = 6  # training epochs of the fidelity embedding net
    keep_checkpoints: bool = True  # keep every evaluated checkpoint (False: only last + chosen)
    # the resumable state (checkpoints/last.pt and the mirror) is written after every evaluation, after the
    # last epoch and otherwise at the first epoch end this many seconds after the last write: a kill loses at
    # most that much training (or one epoch); every epoch (0) cost 15 % of a demo GAN's time in writes
    checkpoint_seconds: float = 30.0  # 0 = after every epoch

    def __post_init__(self) -> None:
        for name in ("ngf", "ndf", "fastgan_width", "nz", "epochs", "batch_size", "eval_every", "n_eval", "embedding_epochs"):
            check(getattr(self, name) >= 1, "gan", name, getattr(self, name), "must be >= 1")
        check(self.checkpoint_seconds >= 0, "gan", "checkpoint_seconds", self.checkpoint_seconds, "must be >= 0 (0 = after every epoch)")
        check(self.max_steps >= 0, "gan", "max_steps", self.max_steps, "must be >= 0 (0 = no cap: train every epoch)")
        check(self.batch_size >= 2, "gan", "batch_size", self.batch_size, "BatchNorm needs at least 2 (paper: 16)")
        for name in ("lr_g", "lr_d", "fastgan_lr"):
            check(getattr(self, name) > 0, "gan", name, getattr(self, name), "a learning rate must be > 0")
        for name in ("beta1", "beta2"):
            check(0 <= getattr(self, name) < 1, "gan", name, getattr(self, name), "Adam's betas lie in [0, 1)")
        check(self.fastgan_step_share > 0, "gan", "fastgan_step_share", self.fastgan_step_share,
              "must be > 0 (1 = the DCGAN's epochs and steps; ~0.45 = about its CPU time at width 4)")
        check(self.fastgan_downscale in FASTGAN_DOWNSCALES, "gan", "fastgan_downscale", self.fastgan_downscale,
              f"choose one of {', '.join(map(str, FASTGAN_DOWNSCALES))} (1 = full size)")
        check(self.fastgan_recon_weight >= 0, "gan", "fastgan_recon_weight", self.fastgan_recon_weight, "must be >= 0 (0 turns D's self-supervision off)")
        check(0 <= self.ema_decay < 1, "gan", "ema_decay", self.ema_decay, "must be in [0, 1); 0 turns the EMA off")
        bad = [o for o in (o.strip() for o in self.diffaugment.split(",")) if o and o not in DIFFAUGMENT_OPS]
        check(not bad, "gan", "diffaugment", self.diffaugment, f"unknown op(s) {bad}; use a comma list of {', '.join(DIFFAUGMENT_OPS)}")
        check_choices(self, "gan")
        check(0 <= self.max_memorisation_rate <= 1, "gan", "max_memorisation_rate", self.max_memorisation_rate, "a share in [0, 1]")


#: the fields of :class:`GanParams` that only one family reads (:mod:`lusynth.gan.families`); every other field is shared
FAMILY_ONLY: dict[str, tuple[str, ...]] = {
    "dcgan": ("ngf", "ndf", "dropout", "instance_noise", "lr_g", "lr_d"),
    "fastgan": ("fastgan_width", "fastgan_recon_weight", "fastgan_downscale", "fastgan_lr", "fastgan_step_share"),
}
assert set(FAMILY_ONLY) == set(GENERATORS)


def _others(family: str) -> tuple[str, ...]:
    if family not in FAMILY_ONLY:
        raise ValueError(f"generator family {family!r} is not one of {list(FAMILY_ONLY)}")
    return tuple(f for other, names in FAMILY_ONLY.items() if other != family for f in names)


def for_family(params: GanParams, family: str) -> GanParams:
    """``params`` as one ``family`` trains with them: the other families' own fields at their defaults.
    A GAN's stage-cache key is built from this, so changing one family's knobs (``--set
    gan.fastgan_step_share=0.45``) leaves the other family's GANs cached; nothing ``family`` reads changes."""
    defaults = GanParams()
    return replace(params, **{f: getattr(defaults, f) for f in _others(family)})


def family_param_names(family: str) -> tuple[str, ...]:
    """The fields of :class:`GanParams` that ``family`` reads (every field but the other families' own),
    in declaration order: what a DVC stage of that family tracks (``lusynth_pipelines.dvc``)."""
    skip = set(_others(family))
    return tuple(f.name for f in fields(GanParams) if f.name not in skip)


def family_fields(params: GanParams, family: str) -> dict[str, Any]:
    """The parameters ``family`` reads, as its run records them (``gan.json``, checkpoints, MLflow),
    so a DCGAN's record never shows FastGAN settings it did not use."""
    names = set(family_param_names(family))
    return {k: v for k, v in as_dict(params).items() if k in names}


@dataclass
class GenerateParams:
    """Synthetic frames from trained GANs, with the near-copy privacy filter (its rule: the
    ``near_copy`` section, :class:`lusynth.metrics.nearcopy.NearCopyPolicy`)."""

    n_per_class: int = 200  # frames kept per class after the filter
    seed: int = 0  # latent stream seed; latent index i is row i of that stream
    which: str = "chosen"  # checkpoint: chosen | last | an evaluated step number
    batch_size: int = 64
    max_rounds: int = 20  # top-up rounds before giving up (a GAN that only copies is an error)

    def __post_init__(self) -> None:
        check(self.n_per_class >= 1, "generate", "n_per_class", self.n_per_class, "must be >= 1")
        check(self.batch_size >= 1, "generate", "batch_size", self.batch_size, "must be >= 1")
        check(self.max_rounds >= 1, "generate", "max_rounds", self.max_rounds, "must be >= 1")
        check(self.which in ("chosen", "last") or self.which.isdigit(), "generate", "which", self.which,
              "use 'chosen', 'last' or an evaluated step number")
