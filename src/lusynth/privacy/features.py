"""Feature spaces of the audit: pixels, and an embedding trained on the real training frames only.

- ``pixels``: frames flattened to [0, 1] (:func:`lusynth.metrics.nearcopy.pixels`): catches exact
  and noisy copies, but a copy shifted by a few pixels or with another gain is far away in it;
- ``spectrum``: the log-magnitude of the 2-D Fourier transform of the frame standardised to zero
  mean and unit variance, L2-normalised: invariant to gain and offset (contrast, brightness) and
  to circular shifts, nearly so to small shifts with a black border. Speckle makes every frame of
  another patient about equally far (calibration ratios ~0.97 on the phantom), while a shifted
  or contrast-changed copy stays close (ratio <= 0.45): the space that catches edited copies;
- ``embedding``: :class:`lusynth.models.embedding.EmbeddingNet` (a small autoencoder with an
  auxiliary class head, multi-scale globally pooled features, L2-normalised), trained here on the
  **member (training) frames only**: the audit never fits anything on the patients it uses as
  calibration or non-members, so those stay unseen by every model involved. It catches
  contrast-changed copies but, at 64 px with a 6-epoch training, only some shifted ones (its
  bottleneck code is not shift-invariant; tests/privacy/test_features.py), hence ``spectrum``.

Pure: arrays in, arrays out (the embedding is trained in memory and not saved).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lusynth.metrics.nearcopy import pixels

__all__ = ["feature_spaces", "spectrum"]


def spectrum(frames: np.ndarray) -> np.ndarray:
    """uint8 frames (N, S, S) -> float32 (N, S * (S // 2 + 1)): normalised log-magnitude spectra."""
    x = np.asarray(frames, np.float32)
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / (x.std(axis=(1, 2), keepdims=True) + 1e-6)
    f = np.log1p(np.abs(np.fft.rfft2(x))).reshape(len(x), -1)
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def feature_spaces(
    spaces: Sequence[str],
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    member: np.ndarray,
    labels: np.ndarray,
    epochs: int = 6,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(real features, synthetic features) per space for uint8 frames (N, S, S) of equal size.

    ``member``: boolean mask of the real rows that trained the generator (the embedding's only
    training data); ``labels``: integer class per real row (the embedding's auxiliary head).
    """
    real_out: dict[str, np.ndarray] = {}
    syn_out: dict[str, np.ndarray] = {}
    for space in spaces:
        if space == "pixels":
            real_out[space], syn_out[space] = pixels(real), pixels(synthetic)
        elif space == "spectrum":
            real_out[space], syn_out[space] = spectrum(real), spectrum(synthetic)
        elif space == "embedding":
            from lusynth.models.embedding import EmbeddingConfig, embed, fit_embedding

            idx = np.flatnonzero(member)
            y = np.asarray(labels)[idx]
            cfg = EmbeddingConfig(n_classes=int(max(2, int(y.max()) + 1)), epochs=epochs,
                                  input_size=min(64, int(real.shape[-1]) // 16 * 16 or 16))
            net = fit_embedding(np.asarray(real[idx]), y, cfg=cfg, seed=seed)
            real_out[space], syn_out[space] = embed(net, np.asarray(real)), embed(net, np.asarray(synthetic))
        else:
            raise ValueError(f"audit: unknown feature space {space!r}; use pixels, spectrum or embedding")
    return real_out, syn_out
