"""Parameters of ``train-classifier`` (defaults = the ``demo`` profile; ``paper`` in profiles.yaml).

The search space is the reference's (``CNN/classify_tunning.py``): learning rate in
{5e-3, 3e-3, 1e-3, 5e-4, 5e-5}, width multiplier m in {3, 5, 8}, dropout in {0.25, 0.35, 0.45}.
Trial 0 always uses the configured point (``lr``, ``width``, ``dropout``) so a 1-trial demo is
predictable; trials 1.. draw uniformly from the space with a generator seeded by the run's seed.

**Equal compute is the rule**: every trial of every arm takes ``steps`` optimiser steps (batches
of ``batch_size``), whatever its training-set size, so ``real+synthetic`` (twice the frames per
"epoch") gets no more updates than ``real``. The checkpoint kept is the one with the best
validation AUC among the validations every ``eval_every`` steps; early stopping (``patience``) is
off by default because it would give the arms different budgets again.

**Augmentation belongs to the arm**: classical augmentation (flip, gamma, blur, speckle) runs only
in ``real+aug``; ``real``, ``real+synthetic`` and ``synthetic`` train on unaugmented frames, so
``real+synthetic`` vs ``real`` measures the GAN alone and ``real+synthetic`` vs ``real+aug``
compares it with the classical alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lusynth.params import check, check_choices
from lusynth.runtime import PRECISIONS

#: classifier arms (docs/architecture.md "Arms"): real only; real with classical augmentation;
#: real plus GAN frames; GAN frames only
ARMS = ("real", "real+aug", "real+synthetic", "synthetic")
#: arms whose training frames get classical augmentation
AUGMENTED_ARMS = ("real+aug",)
#: arms that read synthetic frames (and so a GAN seed and a synthetic:real ratio)
SYNTHETIC_ARMS = ("real+synthetic", "synthetic")
THRESHOLD_RULES = ("youden", "f1")


@dataclass(frozen=True)
class ClassifierParams:
    """Training and search settings for one classifier (one arm x fraction x seed)."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"threshold_rule": THRESHOLD_RULES, "precision": PRECISIONS}

    trials: int = 1  # random-search trials (paper: 12); trial 0 = the configured point below
    lr: float = 1e-3  # RMSprop learning rate of trial 0
    width: int = 3  # channel multiplier m of trial 0
    dropout: float = 0.25  # dropout of trial 0
    search_lr: tuple[float, ...] = (5e-3, 3e-3, 1e-3, 5e-4, 5e-5)
    search_width: tuple[int, ...] = (3, 5, 8)
    search_dropout: tuple[float, ...] = (0.25, 0.35, 0.45)
    batch_size: int = 16  # paper: 8
    steps: int = 120  # optimiser steps per trial, the same for every arm (equal compute; not epochs)
    eval_every: int = 15  # validate every this many steps; the best validation AUC's checkpoint is kept
    patience: int = 0  # validations without a lower validation loss before stopping; 0 = off (equal compute)
    rmsprop_alpha: float = 0.9  # Keras RMSprop rho (torch's default is 0.99)
    rmsprop_eps: float = 1e-7  # Keras RMSprop epsilon
    aug_p: float = 0.5  # real+aug: probability of each augmentation (flip, gamma, blur, speckle, identity)
    gammas: tuple[float, ...] = (0.7, 0.8, 0.9, 1.1, 1.2, 1.3)
    blur_kernels: tuple[int, ...] = (3, 5)  # odd only: even box kernels shift the image half a pixel
    speckle_fraction: float = 0.05  # share of pixels brightened by the sparse speckle noise
    speckle_delta: float = 10.0 / 255.0  # brightness added to those pixels (reference: +10 of 255)
    synthetic_max_per_class: int = 0  # synthetic arm: frames per class used (0 = all available)
    threshold_rule: str = "youden"  # operating point chosen on validation: 'youden' or 'f1'
    eval_batch_size: int = 256
    # auto = bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else fp32; bf16 = bf16 autocast
    # of the network, float32 weights, RMSprop state and loss (lusynth.runtime.autocast_for)
    # demo fp32: the two match in validation AUC (results/precision_quality.json), but with the fast_cpu
    # network fp32 is the faster at 64x64 on this CPU (results/classifier.json: bf16 0.90x of fp32 on 1 thread)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        c = "classifier"
        check(self.trials >= 1, c, "trials", self.trials, "need at least one trial (paper: 12)")
        check(self.lr > 0 and all(v > 0 for v in self.search_lr), c, "lr", self.lr, "learning rates must be > 0")
        check(self.width >= 1 and all(v >= 1 for v in self.search_width), c, "width", self.width,
              "channel multipliers must be >= 1 (paper: 3, 5, 8)")
        check(0 <= self.dropout < 1 and all(0 <= v < 1 for v in self.search_dropout), c, "dropout", self.dropout,
              "dropout must be in [0, 1)")
        check(self.trials == 1 or bool(self.search_lr and self.search_width and self.search_dropout), c, "trials", self.trials,
              "more than one trial needs non-empty search_lr, search_width and search_dropout")
        check(self.batch_size >= 2, c, "batch_size", self.batch_size, "BatchNorm needs batches of at least 2 (paper: 8)")
        check(self.steps >= 1, c, "steps", self.steps, "must be >= 1 (optimiser steps per trial)")
        check(1 <= self.eval_every <= self.steps, c, "eval_every", self.eval_every, f"must be in [1, steps={self.steps}]")
        check(self.patience >= 0, c, "patience", self.patience, "must be >= 0 (0 = no early stopping)")
        check(0 <= self.aug_p <= 1, c, "aug_p", self.aug_p, "a probability in [0, 1]")
        check(all(g > 0 for g in self.gammas), c, "gammas", self.gammas, "gamma values must be > 0")
        check(all(k >= 1 and k % 2 == 1 for k in self.blur_kernels), c, "blur_kernels", self.blur_kernels,
              "box-blur kernels must be odd and >= 1 (e.g. 3, 5)")
        check(0 <= self.speckle_fraction <= 1, c, "speckle_fraction", self.speckle_fraction, "a share of pixels in [0, 1]")
        check(self.synthetic_max_per_class >= 0, c, "synthetic_max_per_class", self.synthetic_max_per_class, "must be >= 0 (0 = all)")
        check(self.eval_batch_size >= 1, c, "eval_batch_size", self.eval_batch_size, "must be >= 1")
        check_choices(self, c)
