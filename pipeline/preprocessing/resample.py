"""Resampling between grids with SimpleITK (images, labels, class probabilities).

Arrays are in numpy order ``(Z, Y, X)`` / ``(Y, X)``; geometries in ITK order. Grids that
share origin and direction and differ in spacing are related by the identity transform in
world coordinates, so resampling back and forth is exact where no resampling is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from pipeline.io.images import Geometry

INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}


def grid_for_spacing(geometry: Geometry, spacing: Sequence[float]) -> Geometry:
    """The grid with the same origin, direction and extent as ``geometry`` at ``spacing`` (mm)."""
    size = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(geometry.size, geometry.spacing, spacing))
    return Geometry(size=size, spacing=tuple(float(s) for s in spacing), origin=geometry.origin, direction=geometry.direction)


def _reference(geometry: Geometry) -> sitk.Image:
    ref = sitk.Image([int(s) for s in geometry.size], sitk.sitkUInt8)
    return geometry.apply_to(ref)


def resample_array(array: np.ndarray, source: Geometry, target: Geometry, interpolation: str, default: float = 0.0) -> np.ndarray:
    """Resample one array from the ``source`` grid onto the ``target`` grid.

    Returns float32 for ``linear``/``bspline`` and the input dtype for ``nearest``.
    """
    if source == target:
        return array.copy()
    image = source.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
    pixel = image.GetPixelID() if interpolation == "nearest" else sitk.sitkFloat32
    out = sitk.Resample(image, _reference(target), sitk.Transform(), INTERPOLATORS[interpolation], float(default), pixel)
    return sitk.GetArrayFromImage(out)


def resample_label(label: np.ndarray, source: Geometry, target: Geometry, mode: str, num_classes: int) -> np.ndarray:
    """Resample a label map; ``mode`` ``nearest`` or ``linear_onehot``.

    ``linear_onehot`` interpolates each class's indicator linearly and takes the argmax,
    one class at a time (memory: two float32 arrays of the target size), which gives
    smooth boundaries where nearest-neighbour gives staircases.
    """
    if source == target:
        return label.copy()
    if mode == "nearest":
        return resample_array(label.astype(np.uint8 if num_classes < 256 else np.int32), source, target, "nearest")
    return argmax_resampled([(label == k).astype(np.float32) for k in range(num_classes)], source, target)


def argmax_resampled(channels: Sequence[np.ndarray] | np.ndarray, source: Geometry, target: Geometry) -> np.ndarray:
    """Argmax over classes of linearly resampled per-class maps, computed class by class.

    Args:
        channels: per-class scores (probabilities or indicators), each in numpy order on
            ``source``; iterated once, so a generator keeps only one class in memory.
    Returns:
        uint8 (or int32 with more than 255 classes) labels on ``target``.
    """
    best = best_value = None
    for k, channel in enumerate(channels):
        value = resample_array(np.asarray(channel, dtype=np.float32), source, target, "linear")
        if best is None:
            best_value = value
            best = np.zeros(value.shape, dtype=np.int32)
            continue
        better = value > best_value
        best[better] = k
        np.maximum(best_value, value, out=best_value)
    assert best is not None, "argmax_resampled needs at least one channel"
    return best.astype(np.uint8) if best.max(initial=0) < 256 else best
