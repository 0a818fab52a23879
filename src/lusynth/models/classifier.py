"""The paper's frame classifier in PyTorch: a VGG-style stack of depthwise-separable convolutions.

Yu et al. 2023 (reference code Global-Health-Labs/US-DCGAN, ``CNN/classify_tunning.py``, Keras)
use, at 256x256x1 and with width multiplier ``m`` in {3, 5, 8}::

    block  convs  channels  (each conv: 3x3 separable, valid padding, ReLU, then BatchNorm)
    1      2      4m        -> 2x2 max-pool -> dropout
    2      2      8m        -> 2x2 max-pool -> dropout
    3      2      16m       -> 2x2 max-pool -> dropout
    4      2      32m       -> 2x2 max-pool -> dropout
    5      1      64m       -> 2x2 max-pool -> dropout
    6      1      64m       -> 2x2 max-pool -> dropout
    global average pool -> dropout -> dense(2)

The order conv -> ReLU -> BatchNorm follows the reference (Keras ``activation='relu'`` inside the
conv, then ``BatchNormalization``). Valid padding shrinks every map by 2 per conv and pooling
halves it (floor), so the spatial size runs 256 -> 126 -> 61 -> 28 -> 12 -> 5 -> 1.

**Number of blocks at other sizes** (:func:`n_blocks`): the longest prefix of the six paper blocks
whose convs and pools keep the map at least 1x1. That is 6 blocks at 256 (exactly the paper), 5 at
128 (128 -> 62 -> 29 -> 12 -> 4 -> 1) and 3 at 64 (64 -> 30 -> 13 -> 4; a fourth two-conv block
would need a 6x6 input). The head always sits on the last block's channels.

**CPU training kernels** (``fast_cpu``, on by default): BatchNorm and dropout are
:class:`~lusynth.models.fastcpu.FastBatchNorm2d` and :class:`~lusynth.models.fastcpu.FastDropout`,
subclasses of the stock layers with the same parameters and buffers (a state dict loads either
way) and the same function; they differ from the stock layers only while training on the CPU
(BatchNorm to float rounding, dropout in which random draws make the mask). ``fast_cpu=False`` is
the stock network (the benchmark's baseline).

Pure module: no IO. :meth:`FrameClassifier.embed` returns the globally pooled features (the input
of the head), used as the feature space for FID/KID and 1-NN fidelity metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lusynth.models.fastcpu import FastBatchNorm2d, FastDropout

#: (channel factor, number of separable convs) of the paper's six blocks, in order
PAPER_BLOCKS: tuple[tuple[int, int], ...] = ((4, 2), (8, 2), (16, 2), (32, 2), (64, 1), (64, 1))
SUPPORTED_SIZES = (64, 128, 256)


def block_sizes(image_size: int) -> list[int]:
    """Spatial size after each paper block that fits ``image_size`` (valid 3x3 convs, 2x2 pools)."""
    sizes: list[int] = []
    s = int(image_size)
    for _, n_convs in PAPER_BLOCKS:
        after_convs = s - 2 * n_convs
        if after_convs < 2:  # a 2x2 pool needs at least 2x2
            break
        s = after_convs // 2
        sizes.append(s)
    return sizes


def n_blocks(image_size: int) -> int:
    """How many of the paper's six blocks fit an ``image_size`` input: 3 at 64, 5 at 128, 6 at 256."""
    return len(block_sizes(image_size))


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of one classifier network."""

    image_size: int = 64  # input is (B, 1, image_size, image_size)
    width: int = 3  # the paper's channel multiplier m, searched over {3, 5, 8}
    dropout: float = 0.25  # after every block and before the head; searched over {0.25, 0.35, 0.45}
    n_classes: int = 2  # softmax head, as the reference (index 1 = positive class)
    fast_cpu: bool = True  # CPU training kernels for BatchNorm and dropout (same parameters and function; False = stock layers)

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"image_size={self.image_size}: the classifier needs at least 16x16 frames")
        if self.width < 1:
            raise ValueError(f"width={self.width}: the channel multiplier must be >= 1 (paper: 3, 5 or 8)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")
        if self.n_classes < 2:
            raise ValueError(f"n_classes={self.n_classes}: need at least 2")

    @property
    def n_blocks(self) -> int:
        return n_blocks(self.image_size)

    @property
    def channels(self) -> tuple[int, ...]:
        """Output channels of each block used at this image size."""
        return tuple(f * self.width for f, _ in PAPER_BLOCKS[: self.n_blocks])

    @property
    def embed_dim(self) -> int:
        return self.channels[-1]


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1): 3x3 depthwise, then 1x1 pointwise with bias."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, padding=0, groups=in_ch, bias=False)  # (B, in, s-2, s-2)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=True)  # (B, out, s-2, s-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class FrameClassifier(nn.Module):
    """Separable-conv VGG-style classifier; ``forward`` returns logits (B, n_classes)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        bn, dropout = (FastBatchNorm2d, FastDropout) if config.fast_cpu else (nn.BatchNorm2d, nn.Dropout)
        in_ch, s = 1, config.image_size  # input (B, 1, S, S)
        for (factor, n_convs), _ in zip(PAPER_BLOCKS, range(config.n_blocks), strict=False):
            out_ch = factor * config.width
            for _ in range(n_convs):
                layers.append(SeparableConv2d(in_ch, out_ch))  # (B, out_ch, s-2, s-2): valid padding
                layers.append(nn.ReLU(inplace=True))  # (B, out_ch, s-2, s-2)
                layers.append(bn(out_ch))  # (B, out_ch, s-2, s-2): after ReLU, as the reference
                in_ch, s = out_ch, s - 2
            layers.append(nn.MaxPool2d(2))  # (B, out_ch, s//2, s//2)
            layers.append(dropout(config.dropout))  # (B, out_ch, s//2, s//2)
            s //= 2
        # at 256: (B, 64m, 1, 1); at 128: (B, 64m, 1, 1); at 64: (B, 16m, 4, 4)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (B, C, 1, 1): global average pool
        self.head_dropout = dropout(config.dropout)  # (B, C)
        self.head = nn.Linear(in_ch, config.n_classes)  # (B, n_classes) logits; softmax in the loss
        self.final_size = s

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, embed_dim): the head's input, before its dropout."""
        return self.pool(self.features(x)).flatten(1)  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(self.embed(x)))  # (B, n_classes)

    def layer_shapes(self, batch: int = 1) -> list[tuple[str, tuple[int, ...]]]:
        """(layer name, output shape) for every layer, from a dry run on zeros (for docs and tests)."""
        out: list[tuple[str, tuple[int, ...]]] = []
        x = torch.zeros(batch, 1, self.config.image_size, self.config.image_size)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            for i, layer in enumerate(self.features):
                x = layer(x)
                out.append((f"features.{i}.{type(layer).__name__}", tuple(x.shape)))
            x = self.pool(x).flatten(1)
            out.append(("pool", tuple(x.shape)))
            x = self.head(x)
            out.append(("head", tuple(x.shape)))
        self.train(was_training)
        return out


def build_classifier(config: ClassifierConfig) -> FrameClassifier:
    """A freshly initialised classifier (PyTorch default init; seed torch before calling)."""
    return FrameClassifier(config)
