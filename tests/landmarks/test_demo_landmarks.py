"""The brain demo's landmarks: the inverse of a case's deformation carries points correctly."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("nilearn")

from pipeline.demo import brain  # noqa: E402
from pipeline.tasks.landmarks import demo  # noqa: E402


def test_template_landmarks_are_near_their_mni_coordinates() -> None:
    points = demo.template_landmarks()
    assert list(points) == list(demo.NAMES)
    for name, (x, y, z) in demo.MNI_RAS.items():
        assert np.linalg.norm(np.array(points[name]) - np.array([-x, -y, z])) < 3.0  # RAS -> LPS
    left, right = np.array(points["frontal_horn_L"]), np.array(points["frontal_horn_R"])
    assert left[0] > 5 and right[0] < -5  # LPS: +x is the subject's left
    np.testing.assert_allclose(left * [-1, 1, 1], right, atol=1.0)  # the symmetric template


@pytest.mark.parametrize("index", [0, 13])
def test_forward_of_inverse_is_identity(index: int) -> None:
    transform = brain.case_transform(index, seed=0)
    rng = np.random.default_rng(index)
    targets = np.array(list(demo.template_landmarks().values())) + rng.uniform(-20, 20, size=(6, 3))
    for target in targets:
        point = demo.invert_point(transform, target)
        assert np.linalg.norm(np.asarray(transform.TransformPoint(point.tolist())) - target) < 0.1
        assert np.linalg.norm(point - target) < 30  # a plausible move, not a far-away solution


def test_case_transform_is_the_one_make_case_uses() -> None:
    """Resampling a point image with case_transform puts its mass where the inverse says."""
    template = sitk.ReadImage(str(brain.template_path("t1")))
    target = np.array(demo.template_landmarks()["AC"])
    blob = sitk.Image(template.GetSize(), sitk.sitkFloat32)
    blob.CopyInformation(template)
    centre = [int(round(c)) for c in template.TransformPhysicalPointToContinuousIndex(target.tolist())]
    blob[centre] = 1.0
    blob = sitk.SmoothingRecursiveGaussian(blob, 2.0)
    truth = demo.case_landmarks(5, seed=0)[0]
    grid = sitk.Image([41, 41, 41], sitk.sitkFloat32)
    grid.SetSpacing([0.5] * 3)
    grid.SetOrigin((truth - 10.0).tolist())
    warped = sitk.GetArrayFromImage(sitk.Resample(blob, grid, brain.case_transform(5, seed=0), sitk.sitkLinear, 0.0))
    peak = np.unravel_index(int(np.argmax(warped)), warped.shape)[::-1]  # ITK order
    found = np.asarray(grid.TransformIndexToPhysicalPoint([int(p) for p in peak]))
    centre_world = np.asarray(template.TransformIndexToPhysicalPoint(centre))
    expected = demo.invert_point(brain.case_transform(5, seed=0), centre_world)
    assert np.linalg.norm(found - expected) < 1.0
