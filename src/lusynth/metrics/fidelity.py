"""Fidelity of synthetic frames: how far their distribution is from the real one.

All functions but :func:`sharpness` (which takes frames) take feature matrices (n, d) --
flattened [0, 1] pixels or embeddings from one of the project's networks -- and return plain
floats. The caller chooses the feature space; nothing here loads a network, so "Fréchet distance" and "KID" are the formulas evaluated in *those*
features, not Inception-v3 FID/KID, and are comparable only within one feature space.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.linalg

from lusynth.metrics.distances import (
    _check_block,
    _check_pair,
    nearest_neighbor_distances,
    pairwise_sq_dists_blocks,
)

__all__ = [
    "fidelity_with_floor",
    "frechet_distance",
    "kernel_inception_distance",
    "median_heuristic_gamma",
    "mmd2_rbf",
    "mmd_permutation_test",
    "one_nn_accuracy",
    "one_nn_accuracy_parts",
    "reference_gamma",
    "sharpness",
]

# Points drawn from the pooled sample for the median heuristic: 1000 points give 499,500 pairs,
# plenty for a stable median, at a cost independent of n.
_MEDIAN_SUBSAMPLE = 1000
_MEDIAN_SEED = 0


def median_heuristic_gamma(x: np.ndarray, y: np.ndarray) -> float:
    """RBF ``gamma = 1 / (2 * median squared distance)`` over the pooled sample (Gretton et al. 2012).

    The median is taken over all distinct pairs of at most 1000 pooled rows drawn with a fixed
    seed (0), so the bandwidth -- and the metric -- is reproducible for the same inputs. If more
    than half the pairs coincide the mean of the non-zero distances is used instead.
    """
    _check_pair(x, y, "x", "y")
    n_x, n = x.shape[0], x.shape[0] + y.shape[0]
    rng = np.random.default_rng(_MEDIAN_SEED)
    pick = np.sort(rng.choice(n, size=min(n, _MEDIAN_SUBSAMPLE), replace=False))
    pooled = np.concatenate([x[pick[pick < n_x]], y[pick[pick >= n_x] - n_x]]).astype(np.float64)
    (_, d2), = pairwise_sq_dists_blocks(pooled, pooled, block=len(pooled))
    pairs = d2[np.triu_indices(len(pooled), k=1)]
    median = float(np.median(pairs)) if pairs.size else 0.0
    if median <= 0.0:
        positive = pairs[pairs > 0]
        if positive.size == 0:
            return 1.0  # all sampled rows identical: MMD is 0 for any bandwidth
        median = float(positive.mean())
    return 1.0 / (2.0 * median)


def _kernel_sum(a: np.ndarray, b: np.ndarray, gamma: float, block: int, *, drop_diagonal: bool) -> float:
    """Sum of exp(-gamma |a_i - b_j|^2) over all pairs (without i == j when ``drop_diagonal``)."""
    total = 0.0
    for rows, d2 in pairwise_sq_dists_blocks(a, b, block=block):
        d2 *= -gamma
        np.exp(d2, out=d2)
        if drop_diagonal:
            local = np.arange(rows.stop - rows.start)
            d2[local, rows.start + local] = 0.0
        total += float(d2.sum())
        del d2
    return total


def mmd2_rbf(
    x: np.ndarray,
    y: np.ndarray,
    *,
    gamma: float | None = None,
    unbiased: bool = True,
    block: int = 2048,
) -> float:
    """Squared kernel MMD between samples ``x`` and ``y`` with ``k(a, b) = exp(-gamma |a - b|^2)``.

    MMD is 0 exactly when the distributions match (for a characteristic kernel), and unlike FID
    it makes no Gaussian assumption, which suits multi-modal ultrasound features (Yu et al. 2023).
    ``unbiased=True`` is the U-statistic (diagonals dropped): centred on 0 for equal
    distributions and may be slightly negative; ``False`` is the V-statistic (always >= 0, biased
    upwards by ~1/n). ``gamma=None`` uses :func:`median_heuristic_gamma`.
    """
    _check_pair(x, y, "x", "y")
    block = _check_block(block)
    if gamma is None:
        gamma = median_heuristic_gamma(x, y)
    elif not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma: expected a positive finite RBF bandwidth, got {gamma!r}; or None for the median heuristic")
    n, m = x.shape[0], y.shape[0]
    if unbiased and (n < 2 or m < 2):
        raise ValueError(f"unbiased MMD needs at least 2 rows per sample, got x: {n}, y: {m}")
    k_xx = _kernel_sum(x, x, gamma, block, drop_diagonal=unbiased)
    k_yy = _kernel_sum(y, y, gamma, block, drop_diagonal=unbiased)
    k_xy = _kernel_sum(x, y, gamma, block, drop_diagonal=False)
    if unbiased:
        return k_xx / (n * (n - 1)) + k_yy / (m * (m - 1)) - 2.0 * k_xy / (n * m)
    return k_xx / n**2 + k_yy / m**2 - 2.0 * k_xy / (n * m)


def one_nn_accuracy_parts(
    real: np.ndarray, fake: np.ndarray, *, real_groups: np.ndarray | None = None, fake_groups: np.ndarray | None = None,
    block: int = 2048,
) -> dict[str, float]:
    """Leave-one-out 1-NN two-sample test, split by class: accuracy, real_accuracy, fake_accuracy.

    Every pooled frame is labelled by its nearest other frame (Lopez-Paz & Oquab 2017; Xu et al.
    2018). ``fake_accuracy`` well below 0.5 means synthetic frames sit on top of real ones
    (memorisation); ``real_accuracy`` near 1 with high ``fake_accuracy`` means real frames have no
    synthetic neighbours (dropped modes). Distance ties go to the real frame.

    ``real_groups`` (e.g. the clip of each real frame) makes the real side leave-one-clip-out: real
    frames come in clips of near-identical frames, so plain leave-one-out finds a clip sibling for
    every real frame and the accuracy sits at 1.0 even for a perfect generator. Pass the *patient*
    of each frame (leave-one-patient-out): a patient's clips are alike too, so leave-one-clip-out
    still finds a near-twin for most real frames. ``fake_groups`` does the same for the second
    sample when it is real too (the real-vs-real floor of :func:`fidelity_with_floor`).
    """
    _check_pair(real, fake, "real", "fake")
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"1-NN accuracy needs at least 2 rows per sample, got real: {real.shape[0]}, fake: {fake.shape[0]}")
    # Nearest neighbour within the own set (leave-one-out) vs in the other set: the same answer as
    # 1-NN over the pooled set, without copying both matrices into one.
    d_rr = nearest_neighbor_distances(real, real, exclude_self=True, groups=real_groups, block=block)[0][:, 0]
    d_rf = nearest_neighbor_distances(real, fake, block=block)[0][:, 0]
    d_ff = nearest_neighbor_distances(fake, fake, exclude_self=True, groups=fake_groups, block=block)[0][:, 0]
    d_fr = nearest_neighbor_distances(fake, real, block=block)[0][:, 0]
    real_correct = d_rr <= d_rf
    fake_correct = d_ff < d_fr
    n = real.shape[0] + fake.shape[0]
    return {
        "accuracy": float((real_correct.sum() + fake_correct.sum()) / n),
        "real_accuracy": float(real_correct.mean()),
        "fake_accuracy": float(fake_correct.mean()),
    }


def one_nn_accuracy(real: np.ndarray, fake: np.ndarray, *, real_groups: np.ndarray | None = None, block: int = 2048) -> float:
    """Leave-one-out 1-NN accuracy over real + fake: 0.5 = indistinguishable, 1.0 = separable.

    Chosen by Xu et al. (2018) and Yu et al. (2023) because it needs no bandwidth and catches both
    poor quality (-> 1) and memorisation (-> below 0.5). See :func:`one_nn_accuracy_parts`.
    """
    return one_nn_accuracy_parts(real, fake, real_groups=real_groups, block=block)["accuracy"]


def _centred_blocks(a: np.ndarray, mean: np.ndarray, block: int) -> Iterator[np.ndarray]:
    """Row blocks of ``a - mean`` in float64 (never an n x d float64 copy of the whole matrix)."""
    for start in range(0, a.shape[0], block):
        yield np.asarray(a[start : start + block], dtype=np.float64) - mean


def _cov(a: np.ndarray, mean: np.ndarray, block: int) -> np.ndarray:
    """Unbiased (ddof=1) covariance, accumulated over row blocks."""
    cov = np.zeros((a.shape[1], a.shape[1]), dtype=np.float64)
    for centred in _centred_blocks(a, mean, block):
        cov += centred.T @ centred
    return cov / (a.shape[0] - 1)


def _trace_sqrt_product(x: np.ndarray, mu_x: np.ndarray, y: np.ndarray, mu_y: np.ndarray, block: int) -> tuple[float, float, float]:
    """(tr S_x, tr S_y, tr (S_x S_y)^(1/2)) with the cheaper of two exact factorisations.

    S_x S_y has the spectrum of the PSD matrix S_x^(1/2) S_y S_x^(1/2), so tr (S_x S_y)^(1/2) is
    the sum of square roots of its eigenvalues. With X_c, Y_c the centred samples those non-zero
    eigenvalues are also those of (X_c Y_c^T)(Y_c X_c^T) / ((n-1)(m-1)): an n_small x n_small
    problem, used when a sample has fewer rows than features (2,000 frames of 4096 pixels).
    """
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if min(n, m) < d:
        (small, mu_s), (big, mu_b) = sorted(((x, mu_x), (y, mu_y)), key=lambda t: t[0].shape[0])
        small_c = np.asarray(small, dtype=np.float64) - mu_s  # n_small x d, n_small < d
        gram = np.zeros((small.shape[0], small.shape[0]), dtype=np.float64)
        tr_big = 0.0
        for big_c in _centred_blocks(big, mu_b, block):
            cross = small_c @ big_c.T
            gram += cross @ cross.T
            tr_big += float(np.einsum("ij,ij->", big_c, big_c))
        eig = scipy.linalg.eigvalsh(gram)
        tr_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum()) / np.sqrt((n - 1) * (m - 1))
        tr_small = float(np.einsum("ij,ij->", small_c, small_c)) / (small.shape[0] - 1)
        tr_big /= big.shape[0] - 1
        return (tr_small, tr_big, tr_sqrt) if small is x else (tr_big, tr_small, tr_sqrt)
    cov_x, cov_y = _cov(x, mu_x, block), _cov(y, mu_y, block)
    # S_x^(1/2) of a symmetric PSD matrix via its eigendecomposition (negative round-off clipped).
    w, v = scipy.linalg.eigh(cov_x)
    sqrt_x = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    middle = sqrt_x @ cov_y @ sqrt_x
    eig = scipy.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.trace(cov_x)), float(np.trace(cov_y)), float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``x`` and ``y`` (the FID formula, in these features).

    ``|mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2))``; sensitive to both mean shift and lost
    variety, but assumes Gaussian features. Not Inception FID: values compare only within one
    feature space. The matrix square root's trace comes from a symmetric eigenproblem instead of
    ``scipy.linalg.sqrtm`` (same value, tested): real, stable for the rank-deficient covariances
    of n < d pixel features, and minutes faster at d = 4096.
    """
    _check_pair(x, y, "x", "y")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"Fréchet distance needs at least 2 rows per sample for a covariance, got x: {x.shape[0]}, y: {y.shape[0]}")
    mu_x = np.sum(x, axis=0, dtype=np.float64) / x.shape[0]
    mu_y = np.sum(y, axis=0, dtype=np.float64) / y.shape[0]
    tr_x, tr_y, tr_sqrt = _trace_sqrt_product(x, mu_x, y, mu_y, 2048)
    diff = mu_x - mu_y
    return max(float(diff @ diff + tr_x + tr_y - 2.0 * tr_sqrt), 0.0)  # only round-off goes below 0


def kernel_inception_distance(
    x: np.ndarray,
    y: np.ndarray,
    *,
    subsets: int = 10,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID formula in the given features: unbiased MMD^2 with ``k(a, b) = (a.b / d + 1)^3``.

    Returns (mean, std) over ``subsets`` random subsets of ``subset_size`` rows per side drawn
    without replacement (Binkowski et al. 2018). Unbiased at any sample size, so unlike FID it
    can compare sets of different size; ``subset_size`` is lowered to half the smaller sample, so
    every subset is below both sample sizes and the spread over subsets reflects sampling (with
    the whole smaller side in every subset it would be ~0 whatever the data). Not Inception KID:
    the name is kept for the formula only.
    """
    _check_pair(x, y, "x", "y")
    if isinstance(subsets, bool) or not isinstance(subsets, (int, np.integer)) or subsets < 1:
        raise ValueError(f"subsets: expected a positive integer, got {subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, np.integer)) or subset_size < 2:
        raise ValueError(f"subset_size: expected an integer >= 2, got {subset_size!r}")
    m = min(int(subset_size), min(x.shape[0], y.shape[0]) // 2)
    if m < 2:
        raise ValueError(f"KID needs at least 4 rows per sample (subsets of half of it), got x: {x.shape[0]}, y: {y.shape[0]}")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(int(subsets), dtype=np.float64)
    for s in range(int(subsets)):
        a = np.asarray(x[rng.choice(x.shape[0], m, replace=False)], dtype=np.float64)
        b = np.asarray(y[rng.choice(y.shape[0], m, replace=False)], dtype=np.float64)
        k_aa = (a @ a.T / d + 1.0) ** 3
        k_bb = (b @ b.T / d + 1.0) ** 3
        k_ab = (a @ b.T / d + 1.0) ** 3
        values[s] = (
            (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
            + (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
            - 2.0 * k_ab.sum() / (m * m)
        )
    return float(values.mean()), float(values.std())


def reference_gamma(real: np.ndarray) -> float:
    """RBF bandwidth fixed once from real data alone (median heuristic over at most 1000 real rows).

    :func:`mmd2_rbf` with ``gamma=None`` refits the bandwidth on each pooled sample, so its values
    for two generators (or two checkpoints) are measured with different rulers; computing the
    bandwidth once from the real data and passing it everywhere makes them comparable.
    """
    real = np.asarray(real)
    if real.ndim != 2 or real.shape[0] < 2:
        raise ValueError(f"reference_gamma needs a 2-D array of at least 2 real rows, got shape {real.shape}")
    half = real.shape[0] // 2
    return median_heuristic_gamma(real[:half], real[half:])


def _group_codes(n: int, groups: np.ndarray | None, prefix: str) -> np.ndarray:
    if groups is None:
        return np.array([f"{prefix}{i}" for i in range(n)])
    g = np.asarray(groups).astype(str)
    if g.shape[0] != n:
        raise ValueError(f"groups have {g.shape[0]} entries for {n} rows")
    return np.char.add(prefix, g)


def mmd_permutation_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    gamma: float,
    n_permutations: int = 200,
    max_rows: int = 500,
    seed: int = 0,
    x_groups: np.ndarray | None = None,
    y_groups: np.ndarray | None = None,
) -> tuple[float, float]:
    """Unbiased MMD^2 (fixed ``gamma``) and its permutation p-value for H0: one distribution.

    Rows are permuted in whole groups (e.g. a patient's frames move together; rows without groups
    are their own group), keeping the number of groups per side, so frames of one patient do not
    make the test anti-conservative. At most ``max_rows`` rows per side (drawn with ``seed``)
    enter the test: every permutation is two quadratic forms on the pooled kernel matrix.
    ``p = (1 + #{permuted >= observed}) / (1 + n_permutations)``.
    """
    _check_pair(x, y, "x", "y")
    if n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations}: must be >= 1")
    rng = np.random.default_rng(seed)
    gx, gy = _group_codes(x.shape[0], x_groups, "x:"), _group_codes(y.shape[0], y_groups, "y:")
    ix = np.sort(rng.choice(x.shape[0], min(max_rows, x.shape[0]), replace=False))
    iy = np.sort(rng.choice(y.shape[0], min(max_rows, y.shape[0]), replace=False))
    z = np.concatenate([np.asarray(x[ix], np.float64), np.asarray(y[iy], np.float64)])
    groups = np.concatenate([gx[ix], gy[iy]])
    (_, k), = pairwise_sq_dists_blocks(z, z, block=len(z))
    k = np.exp(-gamma * k)
    diag = np.diag(k).copy()
    names, codes = np.unique(groups, return_inverse=True)
    is_x = np.array([n.startswith("x:") for n in names])
    if is_x.sum() < 1 or (~is_x).sum() < 1 or ix.size < 2 or iy.size < 2:
        raise ValueError("mmd_permutation_test needs at least 2 rows and one group per side")
    labels = np.vstack([is_x] + [rng.permutation(is_x) for _ in range(n_permutations)])  # (P + 1, groups)
    a = labels[:, codes].astype(np.float64)  # (P + 1, rows): 1 = side x
    b = 1.0 - a
    ka, kb = a @ k, b @ k
    na, nb = a.sum(1), b.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xx = ((ka * a).sum(1) - a @ diag) / (na * (na - 1))
        yy = ((kb * b).sum(1) - b @ diag) / (nb * (nb - 1))
        xy = (ka * b).sum(1) / (na * nb)
    stat = xx + yy - 2 * xy
    perm = stat[1:][np.isfinite(stat[1:])]  # a permutation leaving a side with < 2 rows has no statistic
    return float(stat[0]), float((1 + np.count_nonzero(perm >= stat[0])) / (1 + perm.size))


def fidelity_with_floor(
    test: np.ndarray,
    test_patients: np.ndarray,
    other_real: np.ndarray,
    other_patients: np.ndarray,
    synthetic: np.ndarray,
    *,
    gamma: float,
    n_permutations: int = 200,
    max_rows: int = 500,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Synthetic vs real test patients, beside the same numbers for other real patients vs the test patients.

    ``synthetic`` is compared with ``test`` (frames of the test patients); the *floor* compares
    ``other_real`` (frames of other real patients, e.g. validation) with ``test`` in the same way:
    what a generator indistinguishable from new real patients would score. Both use
    leave-one-patient-out 1-NN accuracy and MMD^2 with the fixed bandwidth ``gamma`` and a
    group permutation p-value (patients move together; synthetic frames are independent draws).
    """
    out = {}
    for name, other, groups in (("synthetic", synthetic, None), ("real_floor", other_real, other_patients)):
        parts = one_nn_accuracy_parts(test, other, real_groups=test_patients, fake_groups=groups)
        mmd, p = mmd_permutation_test(test, other, gamma=gamma, n_permutations=n_permutations, max_rows=max_rows, seed=seed,
                                      x_groups=test_patients, y_groups=groups)
        out[name] = {"nn1_accuracy": parts["accuracy"], "nn1_real_accuracy": parts["real_accuracy"],
                     "nn1_other_accuracy": parts["fake_accuracy"], "mmd2": mmd, "mmd_p_value": p, "n": int(other.shape[0])}
    return out


def sharpness(frames: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of frames (N, H, W) (uint8 grey levels, or any scale),
    over the interior pixels: the energy of detail at the 1-2 pixel scale. Smoothing, upsampling or
    averaging patients together lowers it; the ratio synthetic / real shows how much of real frames'
    fine detail a generator makes, which the distribution measures above can miss on few patients
    (a blurred generator can sit closer to unseen patients than other real patients do)."""
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 3 or min(f.shape[1:]) < 3:
        raise ValueError(f"sharpness needs frames (N, H, W) of at least 3x3, got shape {f.shape}")
    lap = 4 * f[:, 1:-1, 1:-1] - f[:, :-2, 1:-1] - f[:, 2:, 1:-1] - f[:, 1:-1, :-2] - f[:, 1:-1, 2:]
    return float(np.abs(lap).mean())
