"""Resampling between grids with SimpleITK (images, labels, class probabilities).

Arrays are in numpy order ``(Z, Y, X)`` / ``(Y, X)``; geometries in ITK order. Grids that
share origin and direction and differ in spacing are related by the identity transform in
world coordinates, so resampling back and forth is exact where no resampling is needed.

Anisotropic data (as nnU-Net): when the source or the target spacing has one axis more
than :data:`ANISOTROPY_RATIO` times coarser than the finest, that coarse axis is resampled
apart - first every slice in-plane with the requested interpolation (the coarse axis is
kept, so its positions coincide and nothing is interpolated across thick slices), then
along the coarse axis alone with ``coarse`` interpolation (``nearest``, nnU-Net's default,
or ``linear``).

Grids that share origin and direction (all that preprocessing and its inverse use) are
resampled axis by axis with :mod:`pipeline.preprocessing.separable` (same results as
SimpleITK, 3-30x faster); other grids with SimpleITK's ``Resample``.
``workflow/benchmarks/bench_resampling.py`` measures both against nnU-Net's scikit-image version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from pipeline.io.images import Geometry
from pipeline.preprocessing.separable import argmax_of, argmax_separable, resample_labels_onehot, resample_separable

INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}
#: Spacing ratio (coarsest / finest axis) above which the coarse axis is resampled apart.
ANISOTROPY_RATIO = 3.0


def coarse_axis(source: Geometry, target: Geometry) -> int | None:
    """ITK index of the axis to resample apart, or None (2D, or not anisotropic).

    The source spacing decides first, then the target's (nnU-Net's rule); an axis is only
    taken when it is the single coarsest one.
    """
    if source.ndim != 3:
        return None
    for spacing in (source.spacing, target.spacing):
        order = np.argsort(spacing)
        if spacing[order[-1]] > ANISOTROPY_RATIO * spacing[order[0]] and spacing[order[-1]] > spacing[order[-2]]:
            return int(order[-1])
    return None


def _intermediate(source: Geometry, target: Geometry, axis: int) -> Geometry:
    """``target``'s grid in-plane, ``source``'s along ``axis``."""
    size = list(target.size)
    spacing = list(target.spacing)
    size[axis], spacing[axis] = source.size[axis], source.spacing[axis]
    return Geometry(size=tuple(size), spacing=tuple(spacing), origin=source.origin, direction=source.direction)


def grid_for_spacing(geometry: Geometry, spacing: Sequence[float]) -> Geometry:
    """The grid with the same origin, direction and extent as ``geometry`` at ``spacing`` (mm)."""
    size = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(geometry.size, geometry.spacing, spacing))
    return Geometry(size=size, spacing=tuple(float(s) for s in spacing), origin=geometry.origin, direction=geometry.direction)


def _reference(geometry: Geometry) -> sitk.Image:
    ref = sitk.Image([int(s) for s in geometry.size], sitk.sitkUInt8)
    return geometry.apply_to(ref)


ORDERS = {"nearest": 0, "linear": 1, "bspline": 3}


def aligned(source: Geometry, target: Geometry) -> bool:
    """Whether the grids share origin and direction (then axes resample apart, exactly)."""
    return (
        source.ndim == target.ndim
        and np.allclose(source.origin, target.origin, rtol=0, atol=1e-6 * min(min(source.spacing), min(target.spacing)))
        and np.allclose(source.direction, target.direction, rtol=0, atol=1e-9)
    )


def _axis_plan(source: Geometry, target: Geometry, interpolation: str, coarse: str | None) -> tuple[list[float], list[int]]:
    """Per numpy axis: spacing ratio target/source and interpolation order."""
    orders = [ORDERS[interpolation]] * source.ndim
    axis = coarse_axis(source, target) if coarse else None
    if axis is not None:
        orders[source.ndim - 1 - axis] = min(orders[0], ORDERS[coarse])  # type: ignore[index]
    ratios = [t / s for s, t in zip(reversed(source.spacing), reversed(target.spacing))]
    return ratios, orders


def resample_array(
    array: np.ndarray, source: Geometry, target: Geometry, interpolation: str, default: float = 0.0, coarse: str | None = None, method: str = "auto"
) -> np.ndarray:
    """Resample one array from the ``source`` grid onto the ``target`` grid.

    ``coarse`` (``nearest`` or ``linear``) resamples an anisotropic coarse axis apart (see
    the module docstring); None resamples all axes together. ``method`` ``auto`` uses
    :mod:`pipeline.preprocessing.separable` for grids that share origin and direction and
    SimpleITK otherwise; ``simpleitk`` forces SimpleITK (for comparisons). ``default``
    fills points outside the source grid only in SimpleITK's general case. Returns float32
    for ``linear``/``bspline`` and the input dtype for ``nearest``.
    """
    if source == target:
        return array.copy()
    if method == "auto" and aligned(source, target):
        ratios, orders = _axis_plan(source, target, interpolation, coarse)
        return resample_separable(array, target.shape_numpy, ratios, orders)
    axis = coarse_axis(source, target) if coarse else None
    if axis is not None and source.size[axis] == target.size[axis] and source.spacing[axis] == target.spacing[axis]:
        axis = None  # nothing to do along the coarse axis: one in-plane pass
    if axis is not None:
        middle = _intermediate(source, target, axis)
        inplane = _resample(array, source, middle, interpolation, default)
        return _resample(inplane, middle, target, "nearest" if coarse == "nearest" else "linear", default)
    return _resample(array, source, target, interpolation, default)


def _resample(array: np.ndarray, source: Geometry, target: Geometry, interpolation: str, default: float) -> np.ndarray:
    if source == target:
        return array
    if array.dtype == bool:
        array = array.view(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    # Integer input is interpolated as is (SimpleITK computes in double, writes float32).
    image = source.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
    pixel = image.GetPixelID() if interpolation == "nearest" else sitk.sitkFloat32
    # Points outside the source grid take the nearest voxel's value, not `default`: the grids
    # here share the origin and their extents differ by up to a voxel at the far end, where
    # a constant would put background into the last row of every axis.
    out = sitk.Resample(image, _reference(target), sitk.Transform(), INTERPOLATORS[interpolation], float(default), pixel, True)
    del image
    return sitk.GetArrayFromImage(out)


def resample_label(
    label: np.ndarray, source: Geometry, target: Geometry, mode: str, num_classes: int, coarse: str | None = None, method: str = "auto"
) -> np.ndarray:
    """Resample a label map; ``mode`` ``nearest`` or ``linear_onehot``.

    ``linear_onehot`` interpolates each class's indicator linearly and takes the argmax,
    one class at a time (memory: the label, one class indicator and two float32 arrays of
    the target size), which gives smooth boundaries where nearest-neighbour gives
    staircases. ``coarse`` as for :func:`resample_array`: with ``nearest`` the coarse axis
    takes the nearest slice's labels. ``method`` as for :func:`resample_array`.
    """
    if source == target:
        return label.copy()
    dtype = np.uint8 if num_classes < 256 else np.int32
    if mode == "nearest":
        return resample_array(label.astype(dtype, copy=False), source, target, "nearest", coarse=coarse, method=method)
    indicators = ((label == k).view(np.uint8) for k in range(num_classes))
    if method == "auto" and aligned(source, target):
        ratios, orders = _axis_plan(source, target, "linear", coarse)
        return resample_labels_onehot(label.astype(dtype, copy=False), target.shape_numpy, ratios, orders)
    axis = coarse_axis(source, target) if coarse else None
    if axis is not None and source.size[axis] == target.size[axis] and source.spacing[axis] == target.spacing[axis]:
        axis = None
    if axis is None:
        return argmax_resampled(indicators, source, target, method=method)
    middle = _intermediate(source, target, axis)
    inplane = argmax_resampled(indicators, source, middle, method=method)
    if coarse == "nearest":
        return _resample(inplane.astype(dtype, copy=False), middle, target, "nearest", 0.0)
    return argmax_resampled(((inplane == k).view(np.uint8) for k in range(num_classes)), middle, target, method=method)


def argmax_resampled(channels: Iterable[np.ndarray] | np.ndarray, source: Geometry, target: Geometry, method: str = "auto") -> np.ndarray:
    """Argmax over classes of linearly resampled per-class maps, computed class by class.

    Args:
        channels: per-class scores (probabilities or indicators), each in numpy order on
            ``source``; iterated once, so a generator keeps only one class in memory.
    Returns:
        uint8 (or int32 with more than 255 classes) labels on ``target``.
    """
    if method == "auto" and aligned(source, target) and source != target:
        ratios, orders = _axis_plan(source, target, "linear", None)
        return argmax_separable(channels, target.shape_numpy, ratios, orders)
    if source == target:
        return argmax_of(np.asarray(c, dtype=np.float32) for c in channels)
    return argmax_of(_resample(np.asarray(c), source, target, "linear", 0.0) for c in channels)
