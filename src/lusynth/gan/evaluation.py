"""Fidelity and memorisation of one generator snapshot (pure: arrays in, numbers out).

The real reference is the class's **validation** frames (the paper compared with the GAN's own
training frames, which rewards memorisation). Two feature spaces: pixels (frames flattened to
[0, 1]) and the project's embedding (:mod:`lusynth.models.embedding`). The memorisation rate is
the share of synthetic frames that are near-copies of a training frame by the one rule the
generation-time privacy filter applies too (:class:`~lusynth.metrics.nearcopy.NearCopyPolicy`).
"""

from __future__ import annotations

import numpy as np

from lusynth.metrics.distances import subsample
from lusynth.metrics.fidelity import mmd2_rbf, one_nn_accuracy_parts, sharpness
from lusynth.metrics.nearcopy import NearCopyPolicy, pixels
from lusynth.metrics.privacy import distance_to_closest_record

__all__ = ["balanced_real_subset", "fidelity_report", "make_grid", "pixels"]


def balanced_real_subset(n_real: int, n_fake: int, *, seed: int) -> np.ndarray:
    """Indices of at most ``n_fake`` real rows (sorted, deterministic): 1-NN accuracy is only
    calibrated at 0.5 when both samples have the same size."""
    return subsample(n_real, n_fake, seed=seed)


def fidelity_report(
    fake: np.ndarray,
    real: np.ndarray,
    *,
    fake_embed: np.ndarray,
    real_embed: np.ndarray,
    train: np.ndarray,
    reference_dcr: np.ndarray,
    near_copy: NearCopyPolicy,
    real_groups: np.ndarray | None = None,
) -> dict[str, float]:
    """MMD^2 (RBF, median heuristic) and 1-NN accuracy (0.5 ideal; leave-one-clip-out on the real
    side when ``real_groups`` gives each real frame's clip) in pixels and in the embedding, plus
    the memorisation rate against ``train`` (uint8 frames) by ``near_copy``, whose reference is
    ``reference_dcr`` (unseen patients' DCR in the policy's feature space,
    :meth:`~lusynth.metrics.nearcopy.NearCopyPolicy.reference_dcr`: the fold's inner validation
    frames and, pooled, its training patients left out in turn; never its test patients), and the fine detail of the fakes relative to
    the real frames' (``sharpness_ratio``, :func:`~lusynth.metrics.fidelity.sharpness`)."""
    fx, rx = pixels(fake), pixels(real)
    nn_pix = one_nn_accuracy_parts(rx, fx, real_groups=real_groups)
    nn_emb = one_nn_accuracy_parts(real_embed, fake_embed, real_groups=real_groups)
    dcr = distance_to_closest_record(near_copy.to_features(fake), near_copy.to_features(train))
    return {
        "mmd_pixels": float(mmd2_rbf(rx, fx)),
        "nn1_pixels": nn_pix["accuracy"],
        "nn1_pixels_real": nn_pix["real_accuracy"],
        "nn1_pixels_fake": nn_pix["fake_accuracy"],
        "mmd_embed": float(mmd2_rbf(real_embed, fake_embed)),
        "nn1_embed": nn_emb["accuracy"],
        "nn1_embed_real": nn_emb["real_accuracy"],
        "nn1_embed_fake": nn_emb["fake_accuracy"],
        "memorisation_rate": near_copy.rate(dcr, reference_dcr),
        "median_dcr_pixels": float(np.median(dcr)),
        # fine detail, synthetic / real (1 = real's): the distribution measures above reward blur on few patients
        "sharpness_ratio": sharpness(fake) / max(sharpness(real), 1e-12),
    }


def make_grid(frames: np.ndarray, *, ncol: int = 8, pad: int = 2) -> np.ndarray:
    """uint8 (N,S,S) -> one uint8 image tiling the frames ``ncol`` per row with a black border."""
    n, s = len(frames), frames.shape[1]
    nrow = max(1, -(-n // ncol))
    grid = np.zeros((nrow * (s + pad) + pad, ncol * (s + pad) + pad), dtype=np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, ncol)
        y, x = pad + r * (s + pad), pad + c * (s + pad)
        grid[y : y + s, x : x + s] = f
    return grid
