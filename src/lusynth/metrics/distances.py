"""Blocked euclidean distances and nearest neighbours between feature matrices.

Fidelity (1-NN, MMD) and privacy (DCR, membership inference) all reduce to distances between
every synthetic and every real frame. At 20,000 frames a side the dense matrix is 3.2 GB of
float64, so everything here works on row blocks: peak memory is O(block * n_reference), not
O(n_queries * n_reference). Products are accumulated in float64 because near-copies of training
frames sit at distances the float32 expansion ``|x|^2 + |y|^2 - 2 x.y`` cannot resolve.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["check_features", "nearest_neighbor_distances", "pairwise_sq_dists_blocks"]

# Columns of the reference matrix converted to float64 at a time: bounds the temporary copy of a
# float32 reference to block x d instead of n x d.
_COLUMN_TILE = 2048


def check_features(array: np.ndarray, *, name: str) -> np.ndarray:
    """Validate a feature matrix: a finite floating-point ``np.ndarray`` of shape (n, d), n, d >= 1.

    Returns the array itself (no copy). Raises ``ValueError`` naming ``name`` and the fix.
    """
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array of shape (n, d), got {type(array).__name__}")
    if array.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D feature matrix (n, d), got shape {array.shape}; "
            "flatten frames with frames.reshape(len(frames), -1)"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{name}: expected float32 or float64 features, got dtype {array.dtype}; "
            "for uint8 frames use frames.reshape(len(frames), -1).astype(np.float32) / 255"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name}: empty feature matrix of shape {array.shape}; pass at least one row and column")
    # One float64 reduction instead of np.isfinite(array).all(): no n x d boolean temporary.
    if not np.isfinite(np.sum(array, dtype=np.float64)):
        raise ValueError(f"{name}: contains NaN or infinite values; clean or drop those rows first")
    return array


def _check_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block: expected a positive integer number of rows, got {block!r}")
    return int(block)


def _check_pair(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    check_features(x, name=x_name)
    check_features(y, name=y_name)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{x_name} has {x.shape[1]} features per row but {y_name} has {y.shape[1]}; "
            "both must come from the same feature extractor / image size"
        )


def _sq_norms(a: np.ndarray) -> np.ndarray:
    """Row squared norms in float64, tile by tile (no full float64 copy of ``a``)."""
    out = np.empty(a.shape[0], dtype=np.float64)
    for start in range(0, a.shape[0], _COLUMN_TILE):
        tile = np.asarray(a[start : start + _COLUMN_TILE], dtype=np.float64)
        out[start : start + tile.shape[0]] = np.einsum("ij,ij->i", tile, tile)
    return out


def pairwise_sq_dists_blocks(
    x: np.ndarray, y: np.ndarray, *, block: int = 2048
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, d2)``: squared euclidean distances from ``x[rows]`` to every row of ``y``.

    ``d2`` is a fresh float64 array of shape (len(rows), len(y)), clipped at 0 (the expansion
    ``|x|^2 + |y|^2 - 2 x.y`` can round slightly negative). Drop it before the next block to keep
    peak memory at one block.
    """
    _check_pair(x, y, "x", "y")
    block = _check_block(block)
    y_norms = _sq_norms(y)
    n_y = y.shape[0]
    for start in range(0, x.shape[0], block):
        rows = slice(start, min(start + block, x.shape[0]))
        xb = np.asarray(x[rows], dtype=np.float64)
        x_norms = np.einsum("ij,ij->i", xb, xb)
        d2 = np.empty((xb.shape[0], n_y), dtype=np.float64)
        for c0 in range(0, n_y, _COLUMN_TILE):
            cols = slice(c0, min(c0 + _COLUMN_TILE, n_y))
            tile = xb @ np.asarray(y[cols], dtype=np.float64).T
            tile *= -2.0
            tile += x_norms[:, None]
            tile += y_norms[None, cols]
            np.maximum(tile, 0.0, out=tile)
            d2[:, cols] = tile
            del tile
        yield rows, d2
        # Without this the generator frame keeps the previous block alive while allocating the next.
        del d2, xb


def _smallest_k(d2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k smallest values of ``d2`` in ascending order; ties go to the lower column."""
    if k == 1:
        idx = np.argmin(d2, axis=1)  # first occurrence: lowest index among ties
        return d2[np.arange(d2.shape[0]), idx][:, None], idx[:, None]
    # The k-th smallest value per row; every column at or below it is a candidate. Ordering the
    # candidates by (row, value, column) makes the tie-break deterministic, unlike argpartition.
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
    rows, cols = np.nonzero(d2 <= kth[:, None])
    vals = d2[rows, cols]
    order = np.lexsort((cols, vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = np.bincount(rows, minlength=d2.shape[0])
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    take = (first[:, None] + np.arange(k)[None, :]).ravel()
    return vals[take].reshape(-1, k), cols[take].reshape(-1, k)


def nearest_neighbor_distances(
    queries: np.ndarray,
    reference: np.ndarray,
    *,
    k: int = 1,
    exclude_self: bool = False,
    groups: np.ndarray | None = None,
    block: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of ``reference`` for every row of ``queries``: (distances, indices).

    Distances are euclidean, shape (n_queries, k), ascending; indices are int64 rows of
    ``reference``, ties broken towards the lower index. ``exclude_self=True`` is leave-one-out
    for ``queries`` being ``reference``: row i never matches itself (exact duplicates elsewhere
    still count, which is what a memorisation check wants). ``groups`` (one label per row, with
    ``exclude_self``) is leave-one-group-out: row i never matches a row of its own group — frames
    of one clip are near-duplicates of each other, so without it a clip is its own neighbour.
    """
    _check_pair(queries, reference, "queries", "reference")
    block = _check_block(block)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    if groups is not None:
        groups = np.asarray(groups)
        if not exclude_self or groups.shape != (reference.shape[0],):
            raise ValueError(f"groups needs exclude_self=True and one label per row ({reference.shape[0]}), got shape {groups.shape}")
        largest = int(np.unique(groups, return_counts=True)[1].max()) if len(groups) else 0
        available = reference.shape[0] - largest
    else:
        available = reference.shape[0] - (1 if exclude_self else 0)
    if k > available:
        raise ValueError(
            f"k={k} but reference has only {available} candidate rows"
            + (" after excluding its own group" if groups is not None else " after excluding self" if exclude_self else "")
            + "; lower k or pass more reference rows"
        )
    if exclude_self and queries.shape != reference.shape:
        raise ValueError(
            f"exclude_self=True needs queries and reference to be the same matrix, got shapes "
            f"{queries.shape} and {reference.shape}"
        )
    n = queries.shape[0]
    distances = np.empty((n, k), dtype=np.float64)
    indices = np.empty((n, k), dtype=np.int64)
    # Selection in row chunks bounds the temporaries of np.partition / nonzero to chunk x n_ref.
    chunk = 256
    for rows, d2 in pairwise_sq_dists_blocks(queries, reference, block=block):
        if groups is not None:
            d2[groups[rows][:, None] == groups[None, :]] = np.inf
        elif exclude_self:
            local = np.arange(rows.stop - rows.start)
            d2[local, rows.start + local] = np.inf
        for c0 in range(0, d2.shape[0], chunk):
            vals, idx = _smallest_k(d2[c0 : c0 + chunk], k)
            out = slice(rows.start + c0, rows.start + c0 + vals.shape[0])
            distances[out] = np.sqrt(vals)
            indices[out] = idx
        del d2
    return distances, indices


def subsample(n: int, k: int, *, seed: int) -> np.ndarray:
    """Sorted indices of at most ``k`` of ``n`` rows, seeded (all rows when n <= k): how every
    metric caller caps a sample, or equalises two samples for the 1-NN test."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
