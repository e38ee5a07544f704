"""Boundary points and surface distances (HD, HD95, ASSD, NSD) in millimetres.

Boundary points are the *centres* of the boundary voxels of a class mask (see
``Conventions.boundary``). Distances are exact Euclidean distances between physical points
``index * spacing`` (mm), found with ``scipy.spatial.cKDTree``: the cost grows with the number
of boundary voxels, never with a bounding box, so a spurious island far away costs only its own
boundary voxels. ``workflow/benchmarks/bench_evaluation.py`` compares this with a cropped exact EDT.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

TIE_SLACK_MM = 1e-6  # NSD: a distance within tolerance + slack counts (absorbs float round-off)
LEAF_SIZE = 32


def _half_neighbourhood(ndim: int, boundary: str) -> list[tuple[int, ...]]:
    """Offsets with first non-zero entry positive: each neighbour pair is compared once."""
    if boundary == "face":
        return [tuple(int(i == axis) for i in range(ndim)) for axis in range(ndim)]
    offsets = []
    for off in itertools.product((-1, 0, 1), repeat=ndim):
        nonzero = [o for o in off if o != 0]
        if nonzero and nonzero[0] > 0:
            offsets.append(off)
    return offsets


def _pair_slices(offset: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices (a, b) so that ``x[b]`` is the neighbour at ``offset`` of ``x[a]``, element by element."""
    a = tuple(slice(0, -1) if o == 1 else slice(1, None) if o == -1 else slice(None) for o in offset)
    b = tuple(slice(1, None) if o == 1 else slice(0, -1) if o == -1 else slice(None) for o in offset)
    return a, b


def boundary_mask(index: np.ndarray, boundary: str = "face") -> np.ndarray:
    """Voxels on the boundary of their own (non-background) label; bool, same shape as ``index``.

    ``index`` is a label-index map (0 = background). A voxel is a boundary voxel if a neighbour
    (face or full neighbourhood, see ``Conventions.boundary``) has another label, or it touches
    the image border. One pass over all labels at once: one comparison per neighbour offset.
    """
    edge = np.zeros(index.shape, dtype=bool)
    for offset in _half_neighbourhood(index.ndim, boundary):
        a, b = _pair_slices(offset)
        diff = index[a] != index[b]
        edge[a] |= diff
        edge[b] |= diff
    for axis in range(index.ndim):
        for end in (0, -1):
            edge[(slice(None),) * axis + (end,)] = True
    edge &= index != 0
    return edge


def boundary_points_by_label(index: np.ndarray, edge: np.ndarray, k: int) -> list[np.ndarray]:
    """Flat (C-order, ascending) indices of the boundary voxels of each label index 0..K-1."""
    flat = np.flatnonzero(edge)
    lab = index.reshape(-1)[flat]
    order = np.argsort(lab, kind="stable")
    splits = np.cumsum(np.bincount(lab, minlength=k))[:-1]
    return np.split(flat[order], splits)


def physical_points(flat: np.ndarray, shape: tuple[int, ...], spacing: np.ndarray) -> np.ndarray:
    """Voxel-centre coordinates in mm, shape (N, ndim), axis order of the array."""
    coords = np.unravel_index(flat, shape)
    return np.stack(coords, axis=1).astype(np.float64) * spacing


def directed_distances(from_points: np.ndarray, to_tree: cKDTree, zero: np.ndarray, bound_mm: float, workers: int = 1) -> np.ndarray:
    """Exact distance (mm) from each point to the nearest point of ``to_tree``; shape (N,).

    ``zero`` marks points known to lie on the other boundary (distance 0, not queried). The
    query first searches within ``bound_mm`` (cheap, most points of a good prediction are close)
    and repeats an unbounded search only for the points that found nothing there.
    """
    dist = np.zeros(len(from_points), dtype=np.float64)
    todo = np.flatnonzero(~zero)
    if todo.size == 0:
        return dist
    near, _ = to_tree.query(from_points[todo], k=1, distance_upper_bound=bound_mm, workers=workers)
    far = ~np.isfinite(near)
    if far.any():
        near[far], _ = to_tree.query(from_points[todo[far]], k=1, workers=workers)
    dist[todo] = near
    return dist


def make_tree(points: np.ndarray) -> cKDTree:
    """KD-tree over boundary points (mm); unbalanced sliding-midpoint build, the fastest here."""
    return cKDTree(points, leafsize=LEAF_SIZE, balanced_tree=False, compact_nodes=False)


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed boundary distances of one class, mm. Both empty only if both masks are empty."""

    pred_to_ref: np.ndarray  # (N_pred_boundary,) distance of each predicted boundary point to the reference boundary
    ref_to_pred: np.ndarray  # (N_ref_boundary,) distance of each reference boundary point to the predicted boundary


def distance_summary(d: SurfaceDistances, tolerance_mm: float, percentile: float, method: str) -> dict[str, float]:
    """HD, HD-percentile, ASSD and NSD (mm / fraction) from the two directed distance arrays.

    Both arrays must be non-empty (the empty cases are settled by the conventions beforehand).
    ``hd`` = max of all distances; ``hd95`` = percentile per ``method`` ("max_directed": max
    of the two directed percentiles; "pooled": percentile of both pooled); ``assd`` = mean of
    both pooled; ``nsd`` = fraction of all boundary points within ``tolerance_mm`` of the other.
    """
    a, b = d.pred_to_ref, d.ref_to_pred
    if method == "max_directed":
        hd_pct = max(np.percentile(a, percentile), np.percentile(b, percentile))
    else:
        hd_pct = np.percentile(np.concatenate([a, b]), percentile)
    n = a.size + b.size
    within = np.count_nonzero(a <= tolerance_mm + TIE_SLACK_MM) + np.count_nonzero(b <= tolerance_mm + TIE_SLACK_MM)
    return {
        "hd": float(max(a.max(), b.max())),
        "hd95": float(hd_pct),
        "assd": float((a.sum() + b.sum()) / n),
        "nsd": float(within / n),
    }
