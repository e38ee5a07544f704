"""Boundaries and closed-form Hausdorff distances (boxes, balls) at isotropic and anisotropic spacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.evaluation import evaluate_case
from pipeline.evaluation.surface import boundary_mask

LABELS = {0: "background", 1: "object"}


@pytest.mark.parametrize("shape", [(13, 11), (9, 8, 7)])
@pytest.mark.parametrize("boundary, connectivity", [("face", 1), ("full", None)])
def test_boundary_matches_scipy_erosion(shape, boundary, connectivity, make_label_map):
    """Boundary of each label == mask minus its erosion, outside the image counting as outside."""
    index = make_label_map(shape, 3, seed=len(shape))
    edge = boundary_mask(index, boundary)
    structure = ndi.generate_binary_structure(len(shape), connectivity or len(shape))
    for lab in (1, 2):
        mask = index == lab
        expected = mask & ~ndi.binary_erosion(mask, structure, border_value=0)
        np.testing.assert_array_equal(edge & mask, expected)
    assert not (edge & (index == 0)).any()


def _box(shape, lo, hi) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = 1
    return out


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 1.1, 2.5)])
def test_translated_box_hausdorff_is_the_shift(spacing):
    """A box and its translate: HD = length of the shift in mm (corner to corner)."""
    shape, shift = (24, 24, 16), (2, 1, 1)
    ref = _box(shape, (5, 5, 4), (15, 15, 10))
    pred = _box(shape, (7, 6, 5), (17, 16, 11))
    row = evaluate_case(ref, pred, spacing, LABELS).iloc[0]
    assert row["hd"] == pytest.approx(math.dist((0, 0, 0), np.multiply(shift, spacing)))


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 1.25), (1.0, 1.25, 2.5), (1.0, 1.0, 1.0)])
def test_ball_around_a_point_hausdorff_is_the_radius(spacing):
    """Reference = one voxel c; prediction = all voxels within R = 10 mm of c (physical ball).

    The farthest ball voxels lie exactly R from c (on the axes: R is a multiple of each
    spacing), the ball's boundary is nearer to c than R, so HD = R exactly.
    """
    radius = 10.0
    half = [int(radius / s) + 2 for s in spacing]
    shape = tuple(2 * h + 1 for h in half)
    grid = np.meshgrid(*[(np.arange(n) - h) * s for n, h, s in zip(shape, half, spacing)], indexing="ij")
    pred = (np.sqrt(sum(g**2 for g in grid)) <= radius + 1e-9).astype(np.uint8)
    ref = np.zeros_like(pred)
    ref[tuple(half)] = 1
    row = evaluate_case(ref, pred, spacing, LABELS).iloc[0]
    assert row["hd"] == pytest.approx(radius)
    assert row["hd"] >= row["hd95"] >= row["assd"] > 0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.0)])
def test_concentric_balls_hausdorff_is_radius_difference(spacing):
    """Balls of 6 mm and 10 mm radius around one centre: HD = 4 mm up to one voxel of discretisation."""
    half = [int(12 / s) + 2 for s in spacing]
    grid = np.meshgrid(*[(np.arange(2 * h + 1) - h) * s for h, s in zip(half, spacing)], indexing="ij")
    dist = np.sqrt(sum(g**2 for g in grid))
    ref, pred = (dist <= 6.0).astype(np.uint8), (dist <= 10.0).astype(np.uint8)
    row = evaluate_case(ref, pred, spacing, LABELS).iloc[0]
    assert abs(row["hd"] - 4.0) <= max(spacing)
    assert row["hd95"] <= row["hd"]


def test_far_island_only_adds_its_own_distance():
    """A one-voxel false island far away: HD jumps to its distance, Dice barely moves."""
    ref = np.zeros((8, 8, 200), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = ref.copy()
    pred[4, 4, 195] = 1
    row = evaluate_case(ref, pred, (1.0, 1.0, 2.0), LABELS).iloc[0]
    assert row["hd"] == pytest.approx((195 - 5) * 2.0)
    assert row["dice"] == pytest.approx(2 * 64 / 129)
