"""Blocked distances agree with dense scipy / scikit-learn results and stay in bounded memory."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from lusynth.metrics.distances import check_features, nearest_neighbor_distances, pairwise_sq_dists_blocks


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((37, 5)).astype(np.float32), rng.random((23, 5)).astype(np.float32)


@pytest.mark.parametrize("block", [1, 7, 10, 37, 100])
def test_blocks_cover_rows_and_equal_cdist(xy: tuple[np.ndarray, np.ndarray], block: int) -> None:
    x, y = xy
    dense = cdist(x.astype(np.float64), y.astype(np.float64), "sqeuclidean")
    seen = np.zeros(len(x), dtype=int)
    for rows, d2 in pairwise_sq_dists_blocks(x, y, block=block):
        assert d2.dtype == np.float64 and d2.shape == (rows.stop - rows.start, len(y))
        assert len(d2) <= block
        np.testing.assert_allclose(d2, dense[rows], rtol=1e-10, atol=1e-12)
        seen[rows] += 1
    assert np.all(seen == 1)


def test_squared_distances_are_clipped_at_zero_and_exact_for_copies() -> None:
    # Large-norm float32 rows: the |x|^2 + |y|^2 - 2x.y expansion of a copy would round to +-eps.
    x = (np.random.default_rng(0).random((50, 4096)) * 1000).astype(np.float32)
    (_, d2), = pairwise_sq_dists_blocks(x, x, block=64)
    assert np.all(d2 >= 0)
    assert np.abs(np.diag(d2)).max() <= 1e-6 * (x.astype(np.float64) ** 2).sum(axis=1).max()


@pytest.mark.parametrize("block", [3, 16, 64])
@pytest.mark.parametrize("k", [1, 4])
def test_nearest_neighbors_match_sklearn(block: int, k: int) -> None:
    rng = np.random.default_rng(2)
    queries, reference = rng.normal(size=(41, 8)), rng.normal(size=(29, 8)).astype(np.float32)
    dist, idx = nearest_neighbor_distances(queries, reference, k=k, block=block)
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(reference.astype(np.float64)).kneighbors(queries)
    assert dist.shape == idx.shape == (41, k) and idx.dtype == np.int64
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(idx, ref_idx)  # continuous data: no ties


@pytest.mark.parametrize("k", [1, 3])
def test_exclude_self_is_leave_one_out(k: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4))
    dist, idx = nearest_neighbor_distances(x, x, k=k, exclude_self=True, block=7)
    dense = cdist(x, x)
    np.fill_diagonal(dense, np.inf)
    expected_idx = np.argsort(dense, axis=1)[:, :k]
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, np.take_along_axis(dense, expected_idx, axis=1), atol=1e-12)
    assert not np.any(idx == np.arange(30)[:, None])
    # Without exclusion every point is its own nearest neighbour at distance 0.
    dist0, idx0 = nearest_neighbor_distances(x, x, k=1)
    np.testing.assert_array_equal(idx0[:, 0], np.arange(30))
    np.testing.assert_allclose(dist0[:, 0], 0.0, atol=1e-6)


def test_exclude_self_keeps_exact_duplicates_elsewhere() -> None:
    x = np.array([[0.0], [5.0], [0.0]])
    dist, idx = nearest_neighbor_distances(x, x, exclude_self=True)
    np.testing.assert_array_equal(idx[:, 0], [2, 0, 0])  # 5.0 ties between rows 0 and 2
    np.testing.assert_allclose(dist[:, 0], [0.0, 5.0, 0.0])


@pytest.mark.parametrize("block", [1, 2, 10])
def test_ties_go_to_the_lower_reference_index(block: int) -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [3.0, 3.0]])
    queries = np.array([[0.0, 0.0], [1.0, 1.0]])
    dist, idx = nearest_neighbor_distances(queries, reference, k=3, block=block)
    np.testing.assert_array_equal(idx, [[0, 1, 2], [0, 1, 2]])
    np.testing.assert_allclose(dist, [[1, 1, 1], [1, 1, np.sqrt(5)]])
    d1, i1 = nearest_neighbor_distances(queries, reference, k=1, block=block)
    np.testing.assert_array_equal(i1[:, 0], [0, 0])


def test_hand_computed_one_dimensional_case() -> None:
    dist, idx = nearest_neighbor_distances(np.array([[0.0], [2.6], [10.0]]), np.array([[1.0], [3.0], [7.0]]), k=2)
    np.testing.assert_array_equal(idx, [[0, 1], [1, 0], [2, 1]])
    np.testing.assert_allclose(dist, [[1.0, 3.0], [0.4, 1.6], [3.0, 7.0]])


@pytest.mark.parametrize(
    ("queries", "reference", "kwargs", "match"),
    [
        (np.zeros(5), np.zeros((3, 5)), {}, "queries: expected a 2-D"),
        (np.zeros((2, 5)), np.zeros((3, 4)), {}, "5 features per row but reference has 4"),
        (np.zeros((2, 5), dtype=np.uint8), np.zeros((3, 5)), {}, "dtype uint8.*/ 255"),
        (np.zeros((0, 5)), np.zeros((3, 5)), {}, "empty"),
        (np.full((2, 5), np.nan), np.zeros((3, 5)), {}, "NaN"),
        (np.zeros((2, 5)), np.zeros((3, 5)), {"k": 4}, "k=4 but reference has only 3"),
        (np.zeros((3, 5)), np.zeros((3, 5)), {"k": 3, "exclude_self": True}, "only 2 candidate rows after excluding self"),
        (np.zeros((2, 5)), np.zeros((3, 5)), {"exclude_self": True}, "same matrix"),
        (np.zeros((2, 5)), np.zeros((3, 5)), {"block": 0}, "block"),
        (np.zeros((2, 5)), np.zeros((3, 5)), {"k": 0}, "k: expected a positive integer"),
    ],
)
def test_bad_inputs_raise_value_error(queries: np.ndarray, reference: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nearest_neighbor_distances(queries, reference, **kwargs)


def test_check_features_rejects_lists() -> None:
    with pytest.raises(ValueError, match="frames: expected a numpy array"):
        check_features([[0.0]], name="frames")  # type: ignore[arg-type]


def test_20k_by_20k_runs_in_bounded_memory() -> None:
    # The dense float64 matrix would be 3.2 GB; blocked, peak allocation is about one block
    # (2048 x 20k x 8 bytes = 328 MB) plus the inputs.
    rng = np.random.default_rng(4)
    n, d = 20_000, 16
    queries, reference = rng.random((n, d), dtype=np.float32), rng.random((n, d), dtype=np.float32)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        dist, idx = nearest_neighbor_distances(queries, reference)  # default block=2048
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 500e6, f"peak allocation {peak / 1e6:.0f} MB"
    assert elapsed < 60
    # Spot-check a few rows against the dense answer.
    rows = rng.choice(n, 20, replace=False)
    dense = cdist(queries[rows].astype(np.float64), reference.astype(np.float64))
    np.testing.assert_array_equal(idx[rows, 0], dense.argmin(axis=1))
    np.testing.assert_allclose(dist[rows, 0], dense.min(axis=1), rtol=1e-9, atol=1e-9)
