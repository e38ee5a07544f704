"""World millimetres <-> continuous voxel indices of a grid, exact inverses of each other.

A grid (:class:`pipeline.io.images.Geometry`, ITK order) maps the continuous ITK index ``i``
(``(x, y[, z])``) to the world point ``p = origin + D diag(spacing) i`` (mm, LPS). Here
indices are returned in numpy order ``(z, y, x)`` so that they index arrays directly.
"""

from __future__ import annotations

import numpy as np

from pipeline.io.images import Geometry


def _matrix(geometry: Geometry) -> np.ndarray:
    """``D diag(spacing)`` (ITK order, ``dim x dim``): mm per index step along each axis."""
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(geometry.ndim, geometry.ndim)
    return direction * np.asarray(geometry.spacing, dtype=np.float64)[None, :]


def world_to_index(points: np.ndarray, geometry: Geometry) -> np.ndarray:
    """World points ``(N, dim)`` in mm (ITK/LPS order x, y[, z]) -> continuous indices ``(N, dim)``, numpy order."""
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    offset = points - np.asarray(geometry.origin, dtype=np.float64)[None, :]
    itk_index = np.linalg.solve(_matrix(geometry), offset.T).T
    return itk_index[:, ::-1].copy()


def index_to_world(indices: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Continuous indices ``(N, dim)`` in numpy order -> world points ``(N, dim)`` in mm (ITK/LPS order)."""
    indices = np.atleast_2d(np.asarray(indices, dtype=np.float64))
    itk_index = indices[:, ::-1]
    return np.asarray(geometry.origin, dtype=np.float64)[None, :] + itk_index @ _matrix(geometry).T


def index_metric(geometry: Geometry) -> np.ndarray:
    """Metric tensor ``G`` (numpy order, ``dim x dim``): ``|p - q|^2 = (i - j)^T G (i - j)`` in mm^2.

    Diagonal ``spacing_numpy**2`` for the orthonormal directions of medical images.
    """
    m = _matrix(geometry)[:, ::-1]  # columns in numpy axis order
    return m.T @ m
