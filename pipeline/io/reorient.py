"""Put an image stored in another axis order or orientation onto a reference voxel grid.

Two images can hold the same voxels at the same world positions and still differ as arrays:
one may store its axes in another order (a transposed array with the columns of the
direction matrix permuted) or run along an axis the other way (a flipped array, that
direction cosine negated and the origin moved to the other end of the axis). Such an image
is the reference grid up to an exact permutation of voxel indices, so it is put onto that
grid without resampling or interpolation (what SimpleITK's ``DICOMOrient``, ``PermuteAxes``
and ``Flip`` do, here on a numpy array). Anything else, a shift, another spacing or an
oblique direction, is a :class:`~pipeline.errors.GeometryError`.

Layouts: arrays are in numpy order, ``(Z, Y, X)`` in 3D and ``(Y, X)`` in 2D, as
``SimpleITK.GetArrayFromImage`` returns them; a :class:`~pipeline.io.images.Geometry` and
the axis numbers of :class:`Reorientation` are in ITK order ``(x, y[, z])`` (axis 0 = x).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from pipeline.errors import GeometryError
from pipeline.io.images import Geometry

log = logging.getLogger(__name__)

AXIS_NAMES = "xyz"


@dataclasses.dataclass(frozen=True)
class Reorientation:
    """The index permutation that maps a moving image onto a reference grid.

    Attributes:
        axes: for each reference ITK axis ``a``, the moving image's ITK axis that runs along it.
        flipped: for each reference ITK axis ``a``, whether that moving axis runs the other way.
    """

    axes: tuple[int, ...]
    flipped: tuple[bool, ...]

    @property
    def is_identity(self) -> bool:
        """Whether the moving image already has the reference's axis order and orientation."""
        return self.axes == tuple(range(len(self.axes))) and not any(self.flipped)

    def describe(self) -> str:
        """In words, e.g. ``"axes (x, y, z) stored as (z, y, x); flipped along x"`` (ITK axes)."""
        names = AXIS_NAMES[: len(self.axes)]
        parts = []
        if self.axes != tuple(range(len(self.axes))):
            stored = ", ".join(names[b] for b in self.axes)
            parts.append(f"axes ({', '.join(names)}) stored as ({stored})")
        flips = [names[a] for a, flip in enumerate(self.flipped) if flip]
        if flips:
            parts.append(f"flipped along {', '.join(flips)}")
        return "; ".join(parts) or "unchanged"

    def geometry(self, moving: Geometry) -> Geometry:
        """The geometry of the moving image after :meth:`apply` (same voxels, same world positions)."""
        n = moving.ndim
        direction = np.asarray(moving.direction, dtype=np.float64).reshape(n, n)
        size, spacing = np.asarray(moving.size), np.asarray(moving.spacing, dtype=np.float64)
        first = np.zeros(n)  # moving index of the voxel that becomes the first one
        for a, b in enumerate(self.axes):
            if self.flipped[a]:
                first[b] = size[b] - 1
        origin = np.asarray(moving.origin, dtype=np.float64) + direction @ (spacing * first)
        signs = np.where(self.flipped, -1.0, 1.0)
        new_direction = direction[:, list(self.axes)] * signs  # column a = (signed) moving axis axes[a]
        return Geometry(
            size=tuple(int(size[b]) for b in self.axes),
            spacing=tuple(float(spacing[b]) for b in self.axes),
            origin=tuple(float(o) for o in origin),
            direction=tuple(float(d) for d in new_direction.ravel()),
        )

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Reorient ``array`` (numpy order, the moving image's shape); a C-contiguous copy.

        The result has shape ``self.geometry(moving).shape_numpy``; voxel values are moved,
        never interpolated.
        """
        n = len(self.axes)
        if array.ndim != n:
            raise ValueError(f"reorientation of {n} axes applied to an array of shape {array.shape}")
        # numpy axis k is ITK axis n-1-k, in the result as in the moving array
        out = np.transpose(array, [n - 1 - self.axes[n - 1 - k] for k in range(n)])
        flips = tuple(n - 1 - a for a, flip in enumerate(self.flipped) if flip)
        if flips:
            out = np.flip(out, axis=flips)
        return np.ascontiguousarray(out)


def find_reorientation(moving: Geometry, reference: Geometry) -> Reorientation | None:
    """The signed axis permutation that brings ``moving``'s axes closest to ``reference``'s.

    Each reference axis is paired with the moving axis whose direction is most nearly
    parallel (or anti-parallel, then ``flipped``). None when the two have different
    dimensions or the pairing is not one-to-one (an oblique direction). Whether the
    reoriented geometry then matches the reference is for :func:`align_to_grid` (or
    :meth:`Geometry.mismatch`) to decide.
    """
    n = reference.ndim
    if moving.ndim != n:
        return None
    ours = np.asarray(reference.direction, dtype=np.float64).reshape(n, n)
    theirs = np.asarray(moving.direction, dtype=np.float64).reshape(n, n)
    dots = ours.T @ theirs  # dots[a, b] = reference axis a . moving axis b
    axes = tuple(int(b) for b in np.abs(dots).argmax(axis=1))
    if sorted(axes) != list(range(n)):
        return None
    return Reorientation(axes=axes, flipped=tuple(bool(dots[a, b] < 0) for a, b in enumerate(axes)))


def align_to_grid(
    array: np.ndarray,
    geometry: Geometry,
    reference: Geometry,
    tolerance: float,
    case: str = "?",
    path: str | os.PathLike[str] = "?",
    reference_path: str | os.PathLike[str] | None = None,
    names: tuple[str, str] = ("reference", "prediction"),
) -> tuple[np.ndarray, Reorientation | None]:
    """``array`` on the ``reference`` grid: unchanged, or reoriented by an exact index permutation.

    Args:
        array: the image, numpy order, shape ``geometry.shape_numpy``.
        geometry: its geometry (ITK order); ``reference``: the grid it must lie on.
        tolerance: as ``dataset.geometry_tolerance`` (see :meth:`Geometry.mismatch`).
        case, path, reference_path: named in the warning and the error.
        names: what the reference and the image are, for messages.

    Returns:
        The array on the reference grid and the :class:`Reorientation` applied (None when
        the geometry already matched). A reorientation is logged as a warning.

    Raises:
        GeometryError: the grids differ otherwise (size, spacing, origin or direction),
            naming the case, the file and the difference in mm.
    """
    if tuple(array.shape) != geometry.shape_numpy:
        raise ValueError(f"array shape {array.shape} does not match its geometry's shape {geometry.shape_numpy}")
    problem = reference.mismatch(geometry, tolerance, names)
    if problem is None:
        return array, None
    how = find_reorientation(geometry, reference)
    if how is not None and not how.is_identity:
        after = reference.mismatch(how.geometry(geometry), tolerance, names)
        if after is None:
            log.warning(
                "case %r: %s %s is stored in another axis order or orientation than the %s (%s); "
                "reoriented it onto the %s grid (an exact permutation of voxels, no resampling)",
                case, names[1], path, names[0], how.describe(), names[0],
            )  # fmt: skip
            return how.apply(array), how
        problem = f"{problem}; reoriented to the {names[0]}'s axis order ({how.describe()}) it still differs: {after}"
    where = f"the {names[0]} {reference_path}" if reference_path is not None else f"the {names[0]}"
    raise GeometryError(
        case, path,
        f"the {names[1]} is not on the voxel grid of {where}: {problem}. "
        f"Resample the {names[1]} onto the {names[0]} grid (tolerance {tolerance:g}, as dataset.geometry_tolerance)",
    )  # fmt: skip
