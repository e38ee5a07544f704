"""Heatmaps and peak extraction recover known points exactly; world <-> index round trips."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.io.images import Geometry
from pipeline.tasks.landmarks.geometry import index_metric, index_to_world, world_to_index
from pipeline.tasks.landmarks.heatmaps import gaussian_heatmaps, locate_peaks, refine_peak

# Anisotropic spacing, an oblique (rotated, flipped) orthonormal direction, a far origin.
ANGLE = np.deg2rad(20)
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE), 0], [np.sin(ANGLE), np.cos(ANGLE), 0], [0, 0, 1]]) @ np.diag([-1, 1, 1])
GEOMETRY = Geometry(size=(30, 24, 12), spacing=(0.7, 1.1, 3.0), origin=(-40.0, 12.5, 300.0), direction=tuple(ROTATION.ravel()))


def test_world_index_round_trip_is_exact() -> None:
    rng = np.random.default_rng(0)
    world = rng.uniform(-100, 100, size=(50, 3))
    back = index_to_world(world_to_index(world, GEOMETRY), GEOMETRY)
    np.testing.assert_allclose(back, world, atol=1e-9)


def test_world_to_index_matches_simpleitk() -> None:
    import SimpleITK as sitk

    image = GEOMETRY.apply_to(sitk.Image(list(GEOMETRY.size), sitk.sitkUInt8))
    point = (3.0, -7.5, 310.0)
    expected = image.TransformPhysicalPointToContinuousIndex(point)[::-1]  # numpy order
    np.testing.assert_allclose(world_to_index(np.array([point]), GEOMETRY)[0], expected, atol=1e-9)


def test_metric_gives_millimetres() -> None:
    np.testing.assert_allclose(index_metric(GEOMETRY), np.diag([9.0, 1.21, 0.49]), atol=1e-12)


@pytest.mark.parametrize("sigma_mm", [1.5, 3.0])
def test_heatmap_peaks_recover_points_exactly_with_anisotropic_spacing(sigma_mm: float) -> None:
    shape = GEOMETRY.shape_numpy  # (12, 24, 30)
    points = np.array([[5.3, 10.71, 14.02], [2.5, 3.25, 20.9], [9.0, 20.0, 7.49]])
    heatmaps = gaussian_heatmaps(points, shape, index_metric(GEOMETRY), sigma_mm)
    assert heatmaps.shape == (3, *shape) and heatmaps.dtype == np.float32
    found, values = locate_peaks(heatmaps, "quadratic")
    np.testing.assert_allclose(found, points, atol=1e-5)  # float32 heatmaps: exact to ~1e-6 voxel
    assert np.all(values > 0.5)
    world = index_to_world(found, GEOMETRY)
    np.testing.assert_allclose(world, index_to_world(points, GEOMETRY), atol=1e-4)


def test_heatmap_is_round_in_millimetres() -> None:
    metric = index_metric(GEOMETRY)
    centre = np.array([[6.0, 12.0, 15.0]])
    heat = gaussian_heatmaps(centre, GEOMETRY.shape_numpy, metric, 3.0)[0]
    # one voxel along z is 3 mm, along x 0.7 mm: equal values at equal distances in mm
    assert heat[7, 12, 15] == pytest.approx(np.exp(-9 / 18), rel=1e-6)
    assert heat[6, 12, 15 + 3] == pytest.approx(np.exp(-(2.1**2) / 18), rel=1e-6)


def test_patch_heatmap_equals_crop_of_full_heatmap() -> None:
    metric = index_metric(GEOMETRY)
    points = np.array([[5.3, 10.7, 14.0]])
    full = gaussian_heatmaps(points, GEOMETRY.shape_numpy, metric, 2.0)
    patch = gaussian_heatmaps(points, (4, 8, 9), metric, 2.0, start=(3, 6, 10))
    np.testing.assert_allclose(patch, full[:, 3:7, 6:14, 10:19], rtol=1e-6)


def test_non_diagonal_metric_uses_the_quadratic_form() -> None:
    metric = np.array([[1.0, 0.3], [0.3, 2.0]])
    heat = gaussian_heatmaps(np.array([[4.0, 5.0]]), (9, 11), metric, 1.0)[0]
    d = np.array([1.0, -2.0])
    assert heat[5, 3] == pytest.approx(np.exp(-(d @ metric @ d) / 2), rel=1e-6)


def test_soft_argmax_and_none_refinements() -> None:
    heat = gaussian_heatmaps(np.array([[6.0, 7.0, 8.0]]), (12, 14, 16), np.eye(3), 1.0)[0]
    np.testing.assert_allclose(refine_peak(heat, (6, 7, 8), "soft_argmax", 3), [6, 7, 8], atol=1e-6)
    np.testing.assert_array_equal(refine_peak(heat, (6, 7, 8), "none"), [6, 7, 8])
    with pytest.raises(ValueError, match="unknown peak refinement"):
        refine_peak(heat, (6, 7, 8), "cubic")


def test_invalid_sigma_is_an_error() -> None:
    with pytest.raises(ValueError, match="sigma_mm must be positive"):
        gaussian_heatmaps(np.zeros((1, 2)), (4, 4), np.eye(2), 0.0)
