"""Gaussian landmark heatmaps on a voxel grid and sub-voxel peak extraction.

Layouts: heatmaps ``(L, *spatial)`` float32, numpy axis order, one channel per landmark;
points ``(L, dim)`` continuous voxel indices in numpy order. Widths are in millimetres and
the grid's metric (:func:`pipeline.tasks.landmarks.geometry.index_metric`) turns index offsets into
millimetres, so anisotropic spacing gives round blobs in the world.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.errors import SettingError

REFINEMENTS = ("quadratic", "soft_argmax", "none")


def gaussian_heatmaps(centres: np.ndarray, shape: Sequence[int], metric: np.ndarray, sigma_mm: float, start: Sequence[int] | None = None) -> np.ndarray:
    """``exp(-d^2 / (2 sigma^2))`` per landmark, ``d`` the distance in mm to its centre.

    Args:
        centres: ``(L, dim)`` landmark positions, continuous indices (numpy order) of the
            full grid; positions outside the patch are allowed (their tails may show).
        shape: spatial shape of the patch, numpy order.
        metric: ``(dim, dim)`` metric tensor of the grid (mm^2 per index step^2).
        sigma_mm: standard deviation of the Gaussian in mm (> 0).
        start: index of the patch's first voxel in the full grid (default zeros).
    Returns:
        float32 ``(L, *shape)`` with peak value 1 at a centre that falls on a voxel.
    """
    if sigma_mm <= 0:
        raise SettingError(f"sigma_mm must be positive, got {sigma_mm}")
    centres = np.atleast_2d(np.asarray(centres, dtype=np.float64))
    dims = len(shape)
    start = np.zeros(dims) if start is None else np.asarray(start, dtype=np.float64)
    axes = [np.arange(n, dtype=np.float64) + s for n, s in zip(shape, start)]
    out = np.empty((len(centres), *shape), dtype=np.float32)
    diagonal = np.allclose(metric, np.diag(np.diag(metric)))
    for k, centre in enumerate(centres):
        if diagonal:  # separable: outer product of 1D Gaussians
            value = np.ones((1,) * dims)
            for axis, (grid, c) in enumerate(zip(axes, centre)):
                g = np.exp(-metric[axis, axis] * (grid - c) ** 2 / (2 * sigma_mm**2))
                value = value * g.reshape([-1 if a == axis else 1 for a in range(dims)])
        else:
            offsets = np.stack(np.meshgrid(*[grid - c for grid, c in zip(axes, centre)], indexing="ij"), axis=-1)
            value = np.exp(-np.einsum("...i,ij,...j->...", offsets, metric, offsets) / (2 * sigma_mm**2))
        out[k] = value
    return out


def _quadratic_offset(below: float, centre: float, above: float) -> float:
    """Vertex of the parabola through ``(-1, below), (0, centre), (1, above)``; 0 if not a maximum."""
    curvature = below - 2.0 * centre + above
    if not curvature < 0:
        return 0.0
    return float(np.clip(0.5 * (below - above) / curvature, -1.0, 1.0))


def refine_peak(heatmap: np.ndarray, peak: Sequence[int], method: str, window: int = 2) -> np.ndarray:
    """Sub-voxel position of the maximum of one heatmap near the integer ``peak``.

    ``quadratic``: per axis, the vertex of the parabola through the logarithms of the peak
    and its two neighbours (exact for a Gaussian whose axes align with the grid, as made by
    :func:`gaussian_heatmaps`). ``soft_argmax``: centroid of the positive values in the cube
    of half-width ``window`` voxels around the peak. ``none``: the integer peak.
    """
    peak_arr = np.asarray(peak, dtype=np.float64)
    if method == "none":
        return peak_arr
    if method == "soft_argmax":
        lo = [max(p - window, 0) for p in peak]
        hi = [min(p + window + 1, n) for p, n in zip(peak, heatmap.shape)]
        box = np.clip(heatmap[tuple(slice(a, b) for a, b in zip(lo, hi))].astype(np.float64), 0, None)
        if box.sum() <= 0:
            return peak_arr
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
        return np.array([(g * box).sum() / box.sum() for g in grids])
    if method != "quadratic":
        raise SettingError(f"unknown peak refinement {method!r}; valid: {list(REFINEMENTS)}")
    tiny = max(float(heatmap[tuple(peak)]) * 1e-6, 1e-12)
    out = peak_arr.copy()
    for axis in range(heatmap.ndim):
        if not 0 < peak[axis] < heatmap.shape[axis] - 1:
            continue
        values = []
        for step in (-1, 0, 1):
            index = list(peak)
            index[axis] += step
            values.append(np.log(max(float(heatmap[tuple(index)]), tiny)))
        out[axis] += _quadratic_offset(*values)
    return out


def locate_peaks(heatmaps: np.ndarray, method: str = "quadratic", window: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Each landmark at the maximum of its heatmap, refined below the voxel.

    Args:
        heatmaps: ``(L, *spatial)``.
    Returns:
        ``(points, values)``: ``(L, dim)`` continuous indices (numpy order) and the ``(L,)``
        heatmap values at the integer peaks.
    """
    points, values = [], []
    for heatmap in np.asarray(heatmaps):
        peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
        points.append(refine_peak(heatmap, [int(p) for p in peak], method, window))
        values.append(float(heatmap[peak]))
    return np.array(points, dtype=np.float64).reshape(len(points), -1), np.array(values)
