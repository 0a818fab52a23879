"""Parameters of ``train-classifier`` (defaults = the ``demo`` profile; ``paper`` in profiles.yaml).

The search space is the reference's (``CNN/classify_tunning.py``): learning rate in
{5e-3, 3e-3, 1e-3, 5e-4, 5e-5}, width multiplier m in {3, 5, 8}, dropout in {0.25, 0.35, 0.45}.
Trial 0 always uses the configured point (``lr``, ``width``, ``dropout``) so a 1-trial demo is
predictable; trials 1.. draw uniformly from the space with a generator seeded by the run's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

ARMS = ("real", "real+synthetic", "synthetic")
THRESHOLD_RULES = ("youden", "f1")


@dataclass(frozen=True)
class ClassifierParams:
    """Training and search settings for one classifier (one arm x fraction x seed)."""

    trials: int = 1  # random-search trials (paper: 12); trial 0 = the configured point below
    lr: float = 1e-3  # RMSprop learning rate of trial 0
    width: int = 3  # channel multiplier m of trial 0
    dropout: float = 0.25  # dropout of trial 0
    search_lr: tuple[float, ...] = (5e-3, 3e-3, 1e-3, 5e-4, 5e-5)
    search_width: tuple[int, ...] = (3, 5, 8)
    search_dropout: tuple[float, ...] = (0.25, 0.35, 0.45)
    batch_size: int = 16  # paper: 8
    max_epochs: int = 15  # paper: 100 (early stopping ends most trials long before)
    patience: int = 3  # epochs without a lower validation loss before stopping (reference: 3)
    rmsprop_alpha: float = 0.9  # Keras RMSprop rho (torch's default is 0.99)
    rmsprop_eps: float = 1e-7  # Keras RMSprop epsilon
    augment: bool = True
    aug_p: float = 0.5  # probability of each augmentation (flip, gamma, blur, speckle, identity)
    gammas: tuple[float, ...] = (0.7, 0.8, 0.9, 1.1, 1.2, 1.3)
    blur_kernels: tuple[int, ...] = (3, 5)  # odd only: even box kernels shift the image half a pixel
    speckle_fraction: float = 0.05  # share of pixels brightened by the sparse speckle noise
    speckle_delta: float = 10.0 / 255.0  # brightness added to those pixels (reference: +10 of 255)
    synthetic_ratio: float = 1.0  # real+synthetic: synthetic frames per real frame, per class
    synthetic_max_per_class: int = 0  # synthetic arm: frames per class used (0 = all available)
    threshold_rule: str = "youden"  # operating point chosen on validation: 'youden' or 'f1'
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"classifier.{field}={getattr(self, field)!r}: {why}")

        if self.trials < 1:
            raise bad("trials", "need at least one trial (paper: 12)")
        if self.lr <= 0 or any(v <= 0 for v in self.search_lr):
            raise bad("lr", "learning rates must be > 0")
        if self.width < 1 or any(v < 1 for v in self.search_width):
            raise bad("width", "channel multipliers must be >= 1 (paper: 3, 5, 8)")
        if not 0 <= self.dropout < 1 or any(not 0 <= v < 1 for v in self.search_dropout):
            raise bad("dropout", "dropout must be in [0, 1)")
        if self.trials > 1 and not (self.search_lr and self.search_width and self.search_dropout):
            raise bad("trials", "more than one trial needs non-empty search_lr, search_width and search_dropout")
        if self.batch_size < 2:
            raise bad("batch_size", "BatchNorm needs batches of at least 2 (paper: 8)")
        if self.max_epochs < 1:
            raise bad("max_epochs", "must be >= 1")
        if self.patience < 1:
            raise bad("patience", "must be >= 1")
        if not 0 <= self.aug_p <= 1:
            raise bad("aug_p", "a probability in [0, 1]")
        if any(g <= 0 for g in self.gammas):
            raise bad("gammas", "gamma values must be > 0")
        if any(k < 1 or k % 2 == 0 for k in self.blur_kernels):
            raise bad("blur_kernels", "box-blur kernels must be odd and >= 1 (e.g. 3, 5)")
        if not 0 <= self.speckle_fraction <= 1:
            raise bad("speckle_fraction", "a share of pixels in [0, 1]")
        if self.synthetic_ratio <= 0:
            raise bad("synthetic_ratio", "synthetic:real ratio must be > 0 (e.g. 1.0)")
        if self.synthetic_max_per_class < 0:
            raise bad("synthetic_max_per_class", "must be >= 0 (0 = all)")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise bad("threshold_rule", f"choose one of {', '.join(THRESHOLD_RULES)}")
        if self.eval_batch_size < 1:
            raise bad("eval_batch_size", "must be >= 1")
