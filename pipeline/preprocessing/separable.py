"""Resampling between axis-aligned grids, one axis at a time (numpy).

Preprocessing and its inverse only resample between grids that share origin and
direction and differ in spacing (:func:`pipeline.preprocessing.resample.grid_for_spacing`).
Voxel ``i`` of the target then lies at source index ``i * t / s`` on each axis, so
interpolation is a tensor product of 1D interpolations: each axis is resampled on its own,
with its own order (nearest 0, linear 1, cubic B-spline 3), which is also how the coarse
axis of anisotropic data is handled apart. The results equal SimpleITK's (same B-spline
interpolation with mirror boundary, same trilinear weights) to float32 rounding.

Along one axis, linear and B-spline interpolation are linear maps: ``out = K @ in`` with
``K`` of shape ``(n_out, n_in)``. For B-splines ``K = A B^-1``: ``B^-1`` turns samples into
spline coefficients (the "prefilter"; ``B`` is tridiagonal), ``A`` evaluates the spline at
the target positions. ``B^-1`` is dense but its entries fall off as ``0.268^distance``, so
``K`` is a band: each block of 32 target voxels needs a window of a few dozen source
voxels (weights below 1e-7 of the block's largest are left out, below float32 rounding).
The resampling is then one small dense matrix product per block, which BLAS runs in place
on the array's own layout, with no transposes: 2-3x faster than a recursive prefilter and
a sparse kernel after moving the axis to the front (``workflow/benchmarks/bench_resampling.py``).

Positions beyond the source's last voxel centre (the extents differ by up to a voxel)
take the edge value, as SimpleITK's nearest-neighbour extrapolation does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

#: Target voxels per block of the banded kernel (32 was fastest on 2 cores, against 16, 64 and 128).
BLOCK = 32
#: Kernel weights smaller than this fraction of a block's largest are left out.
TOLERANCE = 1e-7
#: Source voxels beyond a block's B-spline taps on which its prefilter is solved (0.268^24 = 2e-14).
MARGIN = 24


def source_positions(n_in: int, n_out: int, ratio: float) -> np.ndarray:
    """Source index (float64) of each of ``n_out`` target voxels, ``ratio`` = target / source spacing."""
    return np.clip(np.arange(n_out, dtype=np.float64) * ratio, 0.0, n_in - 1)


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(index)
    period = 2 * n - 2
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def _taps(positions: np.ndarray, n: int, order: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(source indices, weights), ...]`` of the interpolation kernel at ``positions``.

    Order 1 weights are float32 (:func:`resample_labels_onehot` sums them). Order 3 gives the
    cubic B-spline basis times 6 (float64), applied to spline coefficients (mirror boundary);
    :func:`kernel_blocks` divides the 6 back out through the sampling matrix.
    """
    if order == 0:
        # Halves round up, as ITK's nearest-neighbour interpolator does.
        return [(np.minimum(np.floor(positions + 0.5), n - 1).astype(np.intp), np.ones(len(positions), np.float32))]
    base = np.floor(positions).astype(np.intp)
    f = positions - base
    if order == 1:
        upper = np.minimum(base + 1, n - 1)
        return [(base, (1.0 - f).astype(np.float32)), (upper, f.astype(np.float32))]
    weights = [(1 - f) ** 3, 3 * f**3 - 6 * f**2 + 4, -3 * f**3 + 3 * f**2 + 3 * f + 1, f**3]
    return [(_mirror(base - 1 + k, n), w) for k, w in enumerate(weights)]


def _sampling_matrix_transposed(n: int) -> np.ndarray:
    """``6 B^T`` in :func:`scipy.linalg.solve_banded`'s (1, 1) layout, ``B`` the n x n matrix that
    samples a cubic B-spline from its coefficients with mirror boundary: rows ``(1, 4, 1) / 6``,
    with ``(4, 2) / 6`` in the first and ``(2, 4) / 6`` in the last (the mirrored neighbour)."""
    banded = np.zeros((3, n))
    if n == 1:
        banded[1, 0] = 6.0
        return banded
    banded[0, 1:], banded[1], banded[2, :-1] = 1.0, 4.0, 1.0
    banded[2, 0] = 2.0  # B[0, 1]
    banded[0, n - 1] = 2.0  # B[n - 1, n - 2]
    return banded


@lru_cache(maxsize=64)
def kernel_blocks(n_in: int, n_out: int, ratio: float, order: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The band of the 1D kernel ``K`` (order 1 or 3) as ``(r0, r1, c0, c1, K[r0:r1, c0:c1])``
    blocks of float32, one per :data:`BLOCK` target voxels; the columns are those where the
    block has a weight of at least :data:`TOLERANCE` times its largest.

    For order 3 each block solves ``B^T K^T = A^T`` on a window of :data:`MARGIN` source
    voxels beyond its taps (the full ``B`` where the window reaches an end of the axis):
    what lies further changes the kept weights by about ``0.268^MARGIN`` (1e-14). Time and
    memory grow linearly with the axis length.
    """
    from scipy.linalg import solve_banded

    positions = source_positions(n_in, n_out, ratio)
    sampling = _sampling_matrix_transposed(n_in) if order == 3 else None
    margin = MARGIN if sampling is not None else 0
    blocks = []
    for r0 in range(0, n_out, BLOCK):
        r1 = min(r0 + BLOCK, n_out)
        taps = _taps(positions[r0:r1], n_in, order)
        lowest, highest = min(int(i.min()) for i, _ in taps), max(int(i.max()) for i, _ in taps)
        w0, w1 = max(0, lowest - margin), min(n_in, highest + 1 + margin)
        rows = np.zeros((r1 - r0, w1 - w0))
        for index, weight in taps:
            np.add.at(rows, (np.arange(r1 - r0), index - w0), weight)  # mirrored taps can coincide: add
        if sampling is not None:  # K = A B^-1, i.e. B^T K^T = A^T; the window's columns of the banded B^T are its submatrix
            rows = solve_banded((1, 1), sampling[:, w0:w1], rows.T).T
        magnitude = np.abs(rows)
        columns = np.flatnonzero((magnitude >= TOLERANCE * magnitude.max()).any(axis=0))
        c0, c1 = int(columns[0]), int(columns[-1]) + 1
        blocks.append((r0, r1, w0 + c0, w0 + c1, np.ascontiguousarray(rows[:, c0:c1], dtype=np.float32)))
    return tuple(blocks)


def resample_axis(array: np.ndarray, axis: int, n_out: int, ratio: float, order: int) -> np.ndarray:
    """Resample ``array`` along ``axis`` to ``n_out`` voxels; float32 unless ``order`` is 0.

    Order 0 gathers. Orders 1 and 3 view the array as ``(before, n, after)`` and multiply
    each kernel block into its rows of a new float32 array (``(rows, n) @ block.T`` for
    the last axis). ``array`` is not modified. Memory: the output, and a float32 copy of
    the input if it is not float32.
    """
    n = array.shape[axis]
    if order == 0:
        return np.take(array, _taps(source_positions(n, n_out, ratio), n, 0)[0][0], axis=axis)
    values = np.asarray(array, dtype=np.float32)
    before, after = math.prod(array.shape[:axis]), math.prod(array.shape[axis + 1 :])
    out = np.empty((*array.shape[:axis], n_out, *array.shape[axis + 1 :]), dtype=np.float32)
    blocks = kernel_blocks(n, n_out, float(ratio), order)
    if after == 1:
        rows, out_rows = values.reshape(before, n), out.reshape(before, n_out)
        for r0, r1, c0, c1, weights in blocks:
            out_rows[:, r0:r1] = rows[:, c0:c1] @ weights.T
    else:
        slabs, out_slabs = values.reshape(before, n, after), out.reshape(before, n_out, after)
        for r0, r1, c0, c1, weights in blocks:
            out_slabs[:, r0:r1] = weights @ slabs[:, c0:c1]
    return out


def resample_separable(array: np.ndarray, shape: Sequence[int], ratios: Sequence[float], orders: Sequence[int]) -> np.ndarray:
    """Resample ``array`` (numpy order) to ``shape`` with per-axis spacing ``ratios`` and ``orders``.

    Axes that shrink go first, so later passes work on less data.
    """
    out = array
    for axis in sorted(range(array.ndim), key=lambda a: shape[a] / array.shape[a]):
        if shape[axis] != array.shape[axis] or ratios[axis] != 1.0:
            out = resample_axis(out, axis, int(shape[axis]), float(ratios[axis]), int(orders[axis]))
    if out is array:
        out = array.copy()
    return out if orders and max(orders) == 0 else out.astype(np.float32, copy=False)


def argmax_separable(channels: Iterable[np.ndarray], shape: Sequence[int], ratios: Sequence[float], orders: Sequence[int]) -> np.ndarray:
    """Argmax over classes of per-class maps resampled with :func:`resample_separable`, class by class.

    Nearest-neighbour axes (order 0) commute with the argmax, so they are applied once to
    the label map afterwards instead of to every class. Ties go to the lower class.
    Returns uint8 labels (int32 with more than 256 classes).
    """
    nearest = [a for a, order in enumerate(orders) if order == 0]
    if nearest and len(nearest) < len(orders):
        channels = iter(channels)
        first = np.asarray(next(channels))
        middle = [first.shape[a] if a in nearest else shape[a] for a in range(first.ndim)]
        keep = [1.0 if a in nearest else ratios[a] for a in range(first.ndim)]
        skip = [1 if a in nearest else order for a, order in enumerate(orders)]  # these axes keep their size
        labels = argmax_separable(itertools.chain([first], channels), middle, keep, skip)
        return resample_separable(labels, shape, [r if a in nearest else 1.0 for a, r in enumerate(ratios)], [0] * len(orders))
    return argmax_of(resample_separable(np.asarray(c), shape, ratios, orders).astype(np.float32, copy=False) for c in channels)


def argmax_of(values: Iterable[np.ndarray]) -> np.ndarray:
    """Index of the largest of ``values`` (same-shape float32 maps, one per class) at each
    voxel, ties to the lower index; iterated once, holding the running maximum and one map.

    The maps are not modified (the first is copied to hold the maxima). Returns uint8
    (int32 with more than 256 classes).
    """
    best = best_value = None
    for k, value in enumerate(values):
        if best is None:
            best_value, best = np.array(value, dtype=np.float32), np.zeros(np.shape(value), dtype=np.uint8)
            continue
        if k == 256:
            best = best.astype(np.int32)
        better = value > best_value
        best[better] = k
        np.maximum(best_value, value, out=best_value)
        del better
    if best is None:
        raise ValueError("argmax needs at least one class map")
    return best


def resample_labels_onehot(label: np.ndarray, shape: Sequence[int], ratios: Sequence[float], orders: Sequence[int]) -> np.ndarray:
    """One-hot linear resampling of an integer label map: the argmax of the interpolated indicators.

    Equal to interpolating every class's indicator (linear on axes of order >= 1, nearest
    on axes of order 0) and taking the argmax with ties to the lower class, but computed
    from the labels of each target voxel's 2^d neighbours: where they agree (almost
    everywhere) that is the result; only at boundaries are the class weights summed. Time
    and memory do not grow with the number of classes.

    Axis by axis, only two maps are carried: the label of the lower neighbour and whether
    all neighbours so far agree (the lower and upper neighbours agree and were each
    uniform). The neighbours of the few voxels that are not uniform are then gathered
    from ``label`` directly.
    """
    linear = [a for a in range(label.ndim) if orders[a] > 0 and (shape[a] != label.shape[a] or ratios[a] != 1.0)]
    nearest = [a for a in range(label.ndim) if a not in linear]
    lower, uniform = label, None
    taps: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for axis in sorted(linear, key=lambda a: shape[a] / label.shape[a]):
        taps[axis] = _taps(source_positions(label.shape[axis], shape[axis], ratios[axis]), label.shape[axis], 1)
        (low, _), (high, _) = taps[axis]
        upper = np.take(lower, high, axis=axis)
        lower = np.take(lower, low, axis=axis)
        agree = np.equal(lower, upper, out=upper.view(bool) if upper.dtype == np.uint8 else None)
        if uniform is not None:
            agree &= np.take(uniform, low, axis=axis)
            agree &= np.take(uniform, high, axis=axis)
        uniform = agree
    result = lower if uniform is not None else label.copy()
    where = np.flatnonzero(~uniform) if uniform is not None else np.empty(0, dtype=np.intp)
    if where.size:
        coords = np.unravel_index(where, result.shape)
        corners: list[tuple[list[np.ndarray], np.ndarray]] = [([coords[a] for a in range(label.ndim)], np.ones(where.size, dtype=np.float32))]
        for axis in taps:  # the order of the passes above, so the weights multiply in the same order
            corners = [
                (index[:axis] + [tap_index[coords[axis]]] + index[axis + 1 :], weight * tap_weight[coords[axis]])
                for index, weight in corners
                for tap_index, tap_weight in taps[axis]
            ]
        labels = [label[tuple(index)] for index, _ in corners]
        weights = [weight for _, weight in corners]
        best_label, best_score = None, None
        for candidate in labels:
            score = sum(w * (other == candidate) for w, other in zip(weights, labels))
            if best_label is None:
                best_label, best_score = candidate.copy(), score
                continue
            better = (score > best_score) | ((score == best_score) & (candidate < best_label))
            best_label[better], best_score[better] = candidate[better], score[better]
        result.reshape(-1)[where] = best_label
    if not nearest or all(shape[a] == result.shape[a] and ratios[a] == 1.0 for a in nearest):
        return result
    return resample_separable(result, shape, [ratios[a] if a in nearest else 1.0 for a in range(label.ndim)], [0] * label.ndim)
