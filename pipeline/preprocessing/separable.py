"""Resampling between axis-aligned grids, one axis at a time (numpy).

Preprocessing and its inverse only resample between grids that share origin and
direction and differ in spacing (:func:`pipeline.preprocessing.resample.grid_for_spacing`).
Voxel ``i`` of the target then lies at source index ``i * t / s`` on each axis, so
interpolation is a tensor product of 1D interpolations: each axis is resampled on its own,
with its own order (nearest 0, linear 1, cubic B-spline 3), which is also how the coarse
axis of anisotropic data is handled apart. The results equal SimpleITK's (same B-spline
interpolation with mirror boundary, same trilinear weights) to float32 rounding, and
are several times faster (``benchmarks/bench_resampling.py``): each axis is moved to the
front (slice-wise transposes), the B-spline prefilter is a recursive filter vectorised
over the other axes, and the kernel is a sparse matrix product.

Positions beyond the source's last voxel centre (the extents differ by up to a voxel)
take the edge value, as SimpleITK's nearest-neighbour extrapolation does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np

#: Pole of the cubic B-spline prefilter.
POLE = float(np.sqrt(3.0) - 2.0)


def source_positions(n_in: int, n_out: int, ratio: float) -> np.ndarray:
    """Source index (float64) of each of ``n_out`` target voxels, ``ratio`` = target / source spacing."""
    return np.clip(np.arange(n_out, dtype=np.float64) * ratio, 0.0, n_in - 1)


def bspline_prefilter(x: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients along axis 0 of float32 ``x``, in place (mirror boundary)."""
    n = x.shape[0]
    if n == 1:
        return x
    z = np.float32(POLE)
    tmp = np.empty_like(x[0])
    period = 2 * n - 2
    if period <= 30:  # the exact causal initial value of the mirrored signal
        powers = POLE ** np.arange(period) / (1.0 - POLE**period)
        x[0] = np.tensordot(powers.astype(np.float32), x[_mirror(np.arange(period), n)], axes=1)
    else:  # n >= 17, |z|^17 < 1e-9: the sum truncated
        terms = min(n, 30)
        x[0] = np.tensordot((POLE ** np.arange(terms)).astype(np.float32), x[:terms], axes=1)
    for k in range(1, n):  # causal pass
        np.multiply(x[k - 1], z, out=tmp)
        np.add(x[k], tmp, out=x[k])
    x[n - 1] = np.float32(POLE / (POLE * POLE - 1.0)) * (x[n - 1] + z * x[n - 2])
    for k in range(n - 2, -1, -1):  # anti-causal pass
        np.subtract(x[k + 1], x[k], out=tmp)
        np.multiply(tmp, z, out=x[k])
    x *= np.float32(6.0)
    return x


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(index)
    period = 2 * n - 2
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def _taps(positions: np.ndarray, n: int, order: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(source indices, weights), ...]`` of the interpolation kernel at ``positions``."""
    if order == 0:
        # Halves round up, as ITK's nearest-neighbour interpolator does.
        return [(np.minimum(np.floor(positions + 0.5), n - 1).astype(np.intp), np.ones(len(positions), np.float32))]
    base = np.floor(positions).astype(np.intp)
    f = positions - base
    if order == 1:
        upper = np.minimum(base + 1, n - 1)
        return [(base, (1.0 - f).astype(np.float32)), (upper, f.astype(np.float32))]
    weights = [(1 - f) ** 3 / 6, (3 * f**3 - 6 * f**2 + 4) / 6, (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6, f**3 / 6]
    return [(_mirror(base - 1 + k, n), w.astype(np.float32)) for k, w in enumerate(weights)]


def _to_front(array: np.ndarray, axis: int) -> np.ndarray:
    """A C-contiguous float32 copy of ``array`` with ``axis`` first (transposed slice by slice: cache-friendly)."""
    if axis == 0:
        return np.array(array, dtype=np.float32, order="C")
    if array.ndim == 3 and axis == 2:
        out = np.empty((array.shape[2], array.shape[0], array.shape[1]), dtype=np.float32)
        for i in range(array.shape[0]):
            out[:, i] = array[i].T
        return out
    return np.ascontiguousarray(np.moveaxis(array, axis, 0), dtype=np.float32)


def _from_front(moved: np.ndarray, axis: int) -> np.ndarray:
    """Inverse of :func:`_to_front`: a C-contiguous array with the first axis moved to ``axis``."""
    if axis == 0:
        return moved
    if moved.ndim == 3 and axis == 2:
        out = np.empty((moved.shape[1], moved.shape[2], moved.shape[0]), dtype=moved.dtype)
        for i in range(moved.shape[1]):
            out[i] = moved[:, i].T
        return out
    return np.ascontiguousarray(np.moveaxis(moved, 0, axis))


def interpolation_matrix(n_in: int, n_out: int, ratio: float, order: int) -> "scipy.sparse.csr_matrix":  # noqa: F821
    """Sparse ``(n_out, n_in)`` matrix of the 1D kernel (order 1 or 3; 3 expects B-spline coefficients)."""
    from scipy import sparse

    taps = _taps(source_positions(n_in, n_out, ratio), n_in, order)
    rows = np.tile(np.arange(n_out), len(taps))
    cols = np.concatenate([index for index, _ in taps])
    values = np.concatenate([weight for _, weight in taps])
    return sparse.csr_matrix((values, (rows, cols)), shape=(n_out, n_in), dtype=np.float32)  # duplicates (mirrored taps) add up


def resample_axis(array: np.ndarray, axis: int, n_out: int, ratio: float, order: int) -> np.ndarray:
    """Resample ``array`` along ``axis`` to ``n_out`` voxels; float32 unless ``order`` is 0.

    Order 0 gathers; orders 1 and 3 move the axis first (a float32 copy), apply the
    B-spline prefilter there for order 3, and multiply by the sparse kernel matrix.
    Memory: that copy and the output.
    """
    n = array.shape[axis]
    if order == 0:
        return np.take(array, _taps(source_positions(n, n_out, ratio), n, 0)[0][0], axis=axis)
    moved = _to_front(array, axis)
    if order == 3:
        bspline_prefilter(moved)
    result = interpolation_matrix(n, n_out, ratio, order) @ moved.reshape(n, -1)
    del moved
    return _from_front(np.asarray(result, dtype=np.float32).reshape((n_out, *array.shape[:axis], *array.shape[axis + 1 :])), axis)


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
    """
    linear = [a for a in range(label.ndim) if orders[a] > 0 and (shape[a] != label.shape[a] or ratios[a] != 1.0)]
    nearest = [a for a in range(label.ndim) if a not in linear]
    middle = [shape[a] if a in linear else label.shape[a] for a in range(label.ndim)]
    corners: list[tuple[np.ndarray, list[tuple[int, np.ndarray]]]] = [(label, [])]
    for axis in sorted(linear, key=lambda a: shape[a] / label.shape[a]):
        taps = _taps(source_positions(label.shape[axis], shape[axis], ratios[axis]), label.shape[axis], 1)
        corners = [(np.take(array, index, axis=axis), weights + [(axis, weight)]) for array, weights in corners for index, weight in taps]
    first = corners[0][0]
    result = first.copy()
    if len(corners) > 1:
        agree = np.ones(first.shape, dtype=bool)
        for array, _ in corners[1:]:
            agree &= array == first
        where = np.flatnonzero(~agree)
        if where.size:
            coords = np.unravel_index(where, first.shape)
            labels = [array.reshape(-1)[where] for array, _ in corners]
            weights = []
            for _, per_axis in corners:
                w = np.ones(where.size, dtype=np.float32)
                for axis, weight in per_axis:
                    w *= weight[coords[axis]]
                weights.append(w)
            best_label, best_score = None, None
            for candidate in labels:
                score = sum(w * (other == candidate) for w, other in zip(weights, labels))
                if best_label is None:
                    best_label, best_score = candidate.copy(), score
                    continue
                better = (score > best_score) | ((score == best_score) & (candidate < best_label))
                best_label[better], best_score[better] = candidate[better], score[better]
            result.reshape(-1)[where] = best_label
    if not nearest or all(shape[a] == middle[a] and ratios[a] == 1.0 for a in nearest):
        return result
    return resample_separable(result, shape, [ratios[a] if a in nearest else 1.0 for a in range(label.ndim)], [0] * label.ndim)
