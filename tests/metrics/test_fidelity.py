"""Fidelity metrics: hand-computed cases, dense reference formulas and the expected behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from lusynth.metrics.fidelity import (
    frechet_distance,
    kernel_inception_distance,
    median_heuristic_gamma,
    mmd2_rbf,
    one_nn_accuracy,
    one_nn_accuracy_parts,
)


def _gauss(seed: int, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, d)) + shift).astype(np.float32)


# --- MMD -----------------------------------------------------------------------------------------


def _dense_mmd2(x: np.ndarray, y: np.ndarray, gamma: float, unbiased: bool) -> float:
    kxx, kyy, kxy = (np.exp(-gamma * cdist(a, b, "sqeuclidean")) for a, b in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    if unbiased:
        return (kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean()
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("block", [1, 3, 50])
def test_mmd_equals_dense_formula(unbiased: bool, block: int) -> None:
    x, y = _gauss(0, 7, 3), _gauss(1, 5, 3, shift=0.5)
    expected = _dense_mmd2(x.astype(np.float64), y.astype(np.float64), 0.3, unbiased)
    assert mmd2_rbf(x, y, gamma=0.3, unbiased=unbiased, block=block) == pytest.approx(expected, rel=1e-10)


def test_mmd_hand_computed_one_dimensional() -> None:
    # x = {0, 1}, y = {2}: biased MMD^2 = (2 + 2e^-1)/4 + 1 - 2 (e^-4 + e^-1)/2 with gamma = 1.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0]])
    expected = (2 + 2 * np.exp(-1)) / 4 + 1 - (np.exp(-4) + np.exp(-1))
    assert mmd2_rbf(x, y, gamma=1.0, unbiased=False) == pytest.approx(expected, rel=1e-12)


def test_mmd_near_zero_for_one_distribution_and_positive_for_shifted() -> None:
    x, y, shifted = _gauss(0, 400, 8), _gauss(1, 400, 8), _gauss(2, 400, 8, shift=1.0)
    same = mmd2_rbf(x, y)
    different = mmd2_rbf(x, shifted)
    assert abs(same) < 0.005
    assert different > 0.05
    assert different > 20 * abs(same)


def test_unbiased_is_biased_minus_the_diagonal_terms() -> None:
    # Biased (V) estimate adds the diagonal k(x_i, x_i) = 1 terms: always larger for equal samples.
    x, y = _gauss(3, 100, 4), _gauss(4, 100, 4)
    biased, unbiased = mmd2_rbf(x, y, unbiased=False), mmd2_rbf(x, y, unbiased=True)
    assert biased >= 0
    assert biased > unbiased
    assert mmd2_rbf(x, x, unbiased=False) == pytest.approx(0.0, abs=1e-12)


def test_median_heuristic_is_deterministic_and_scales_with_the_data() -> None:
    x, y = _gauss(5, 3000, 4), _gauss(6, 3000, 4)
    gamma = median_heuristic_gamma(x, y)
    assert gamma == median_heuristic_gamma(x, y)
    # Median squared distance of two N(0, I_4) points is ~2 * 4 * 0.84 -> gamma ~ 1 / 13.4.
    assert 1 / 16 < gamma < 1 / 11
    assert median_heuristic_gamma(10 * x, 10 * y) == pytest.approx(gamma / 100, rel=1e-5)
    assert mmd2_rbf(x, y) == pytest.approx(mmd2_rbf(x, y, gamma=gamma))


def test_mmd_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="gamma"):
        mmd2_rbf(_gauss(0, 5, 2), _gauss(1, 5, 2), gamma=-1.0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd2_rbf(_gauss(0, 1, 2), _gauss(1, 5, 2))
    with pytest.raises(ValueError, match="x has 2 features per row but y has 3"):
        mmd2_rbf(_gauss(0, 5, 2), _gauss(1, 5, 3))


# --- 1-NN two-sample test ------------------------------------------------------------------------


def test_one_nn_hand_computed_one_dimensional() -> None:
    # real {0, 1, 10}, fake {1.2, 6, 20}: only real 0 has a same-class nearest neighbour (real 1).
    real, fake = np.array([[0.0], [1.0], [10.0]]), np.array([[1.2], [6.0], [20.0]])
    parts = one_nn_accuracy_parts(real, fake)
    assert parts == pytest.approx({"accuracy": 1 / 6, "real_accuracy": 1 / 3, "fake_accuracy": 0.0})
    separable = one_nn_accuracy(np.array([[0.0], [1.0]]), np.array([[3.0], [3.5]]))
    assert separable == 1.0


def test_one_nn_ties_go_to_the_real_frame() -> None:
    parts = one_nn_accuracy_parts(np.array([[0.0], [10.0]]), np.array([[1.0], [2.0]]))
    # fake 1: real 0 and fake 2 both at 1 -> tie -> real (wrong); fake 2: fake 1 -> right.
    assert parts == pytest.approx({"accuracy": 0.25, "real_accuracy": 0.0, "fake_accuracy": 0.5})
    parts = one_nn_accuracy_parts(np.array([[0.0], [2.0]]), np.array([[-2.0], [9.0]]))
    # real 0: real 2 and fake -2 both at 2 -> tie -> real (right).
    assert parts["real_accuracy"] == 1.0


@pytest.mark.parametrize("block", [7, 2048])
def test_one_nn_matches_dense_leave_one_out(block: int) -> None:
    real, fake = _gauss(7, 60, 5), _gauss(8, 45, 5, shift=0.3)
    pooled = np.concatenate([real, fake]).astype(np.float64)
    d = cdist(pooled, pooled)
    np.fill_diagonal(d, np.inf)
    labels = np.r_[np.zeros(60), np.ones(45)]
    correct = labels[d.argmin(axis=1)] == labels
    parts = one_nn_accuracy_parts(real, fake, block=block)
    assert parts["accuracy"] == pytest.approx(correct.mean())
    assert parts["real_accuracy"] == pytest.approx(correct[:60].mean())
    assert parts["fake_accuracy"] == pytest.approx(correct[60:].mean())


def test_one_nn_half_for_one_distribution_one_for_separable() -> None:
    real, fake = _gauss(9, 500, 8), _gauss(10, 500, 8)
    # Standard error of a 1000-point accuracy at 0.5 is ~0.016: allow ~4 sigma.
    assert one_nn_accuracy(real, fake) == pytest.approx(0.5, abs=0.065)
    assert one_nn_accuracy(real, _gauss(11, 500, 8, shift=10.0)) == 1.0


def test_one_nn_memorised_copies_score_below_half() -> None:
    real = _gauss(12, 200, 8)
    parts = one_nn_accuracy_parts(real, real + 1e-3)
    assert parts["accuracy"] == 0.0 and parts["fake_accuracy"] == 0.0


# --- Fréchet and KID -----------------------------------------------------------------------------


def _frechet_sqrtm(x: np.ndarray, y: np.ndarray) -> float:
    mu_x, mu_y = x.mean(0), y.mean(0)
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(cx @ cy).real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cx + cy - 2 * covmean))


def test_frechet_zero_for_identical_sets() -> None:
    x = _gauss(13, 300, 6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x.copy()) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize(("n", "m", "d"), [(200, 150, 5), (12, 30, 40), (30, 12, 40), (40, 40, 40)])
def test_frechet_equals_the_sqrtm_formula(n: int, m: int, d: int) -> None:
    # n, m >= d uses the d x d covariances; min(n, m) < d the n x n cross-Gram route.
    scale = np.linspace(0.5, 3, d).astype(np.float32)
    x, y = _gauss(14, n, d), _gauss(15, m, d, shift=0.7) * scale
    assert frechet_distance(x, y) == pytest.approx(_frechet_sqrtm(x.astype(np.float64), y.astype(np.float64)), rel=1e-8)


def test_frechet_closed_form_for_known_gaussians() -> None:
    rng = np.random.default_rng(16)
    mu1, mu2 = np.zeros(3), np.array([1.0, -2.0, 0.5])
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s1, s2 = a @ a.T + np.eye(3), b @ b.T + 0.5 * np.eye(3)
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))
    x = rng.multivariate_normal(mu1, s1, size=40_000)
    y = rng.multivariate_normal(mu2, s2, size=40_000)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.03)


def test_frechet_rank_deficient_pixels_stay_finite() -> None:
    # n < d, as with 64x64 pixel features of a small set: singular covariances.
    x, y = _gauss(17, 20, 64), _gauss(18, 20, 64, shift=0.2)
    value = frechet_distance(x, y)
    assert np.isfinite(value) and value > 0
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(x[:1], y)


def test_kid_equals_dense_polynomial_mmd_on_the_full_set() -> None:
    x, y = _gauss(19, 24, 4), _gauss(20, 24, 4, shift=0.4)
    k = lambda a, b: (a.astype(np.float64) @ b.astype(np.float64).T / 4 + 1) ** 3  # noqa: E731
    m = 12  # asked for 100: lowered to half the smaller sample, so subsets differ and their spread means something
    rng = np.random.default_rng(0)
    a, b = x[rng.choice(24, m, replace=False)], y[rng.choice(24, m, replace=False)]
    expected = (k(a, a).sum() - np.trace(k(a, a))) / (m * (m - 1)) + (k(b, b).sum() - np.trace(k(b, b))) / (
        m * (m - 1)
    ) - 2 * k(a, b).mean()
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=100)
    assert mean == pytest.approx(expected, rel=1e-10)
    _, std = kernel_inception_distance(x, y, subsets=4, subset_size=100)
    assert std > 0  # subsets below both sample sizes: not the full set every time


def test_kid_near_zero_for_one_distribution_and_positive_for_shifted() -> None:
    x, y, shifted = _gauss(21, 600, 16), _gauss(22, 600, 16), _gauss(23, 600, 16, shift=0.5)
    same, same_std = kernel_inception_distance(x, y, subsets=5, subset_size=300)
    different, _ = kernel_inception_distance(x, shifted, subsets=5, subset_size=300)
    assert abs(same) < 3 * same_std + 0.01
    assert different > 0.1 and different > 10 * abs(same)
    assert kernel_inception_distance(x, y, subsets=5, subset_size=300) == (same, same_std)  # seeded


def test_kid_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="subsets"):
        kernel_inception_distance(_gauss(0, 5, 2), _gauss(1, 5, 2), subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(_gauss(0, 5, 2), _gauss(1, 5, 2), subset_size=1)


def test_one_nn_leave_one_clip_out() -> None:
    """Real frames in clips of near-duplicates: plain leave-one-out finds a clip sibling for every
    real frame (accuracy ~1 even for a perfect generator); leave-one-clip-out does not."""
    from lusynth.metrics.fidelity import one_nn_accuracy, one_nn_accuracy_parts

    rng = np.random.default_rng(0)
    clip_centres = rng.normal(size=(40, 8))
    real = np.repeat(clip_centres, 5, axis=0) + 0.01 * rng.normal(size=(200, 8))  # 40 clips x 5 frames
    groups = np.repeat(np.arange(40), 5)
    fake = rng.normal(size=(200, 8))  # a perfect generator of clip centres
    assert one_nn_accuracy_parts(real, fake)["real_accuracy"] > 0.95
    grouped = one_nn_accuracy(real, fake, real_groups=groups)
    assert 0.35 < grouped < 0.65, grouped
    with pytest.raises(ValueError, match="one label per row"):
        one_nn_accuracy(real, fake, real_groups=groups[:10])


# --- fine detail ---------------------------------------------------------------------------------


def test_sharpness_is_the_mean_absolute_laplacian_inside_the_frame() -> None:
    from lusynth.metrics.fidelity import sharpness

    assert sharpness(np.full((2, 8, 8), 77, np.uint8)) == 0.0
    assert sharpness(np.tile(np.arange(8, dtype=np.uint8) * 10, (1, 8, 1))) == 0.0  # a linear ramp has no curvature
    checker = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)[None]
    assert sharpness(checker) == pytest.approx(4 * 255)  # every interior pixel differs from its 4 neighbours by 255
    one = np.zeros((1, 5, 5), np.uint8)
    one[0, 2, 2] = 100  # a single bright pixel: |4*100| at it, |-100| at its 4 neighbours, over the 3x3 interior
    assert sharpness(one) == pytest.approx((400 + 4 * 100) / 9)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        sharpness(np.zeros((8, 8)))
