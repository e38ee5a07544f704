"""Evaluation checks the whole geometry: reoriented predictions score as they are, shifted ones fail."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from pipeline.errors import CaseError, GeometryError
from pipeline.evaluation import evaluate_paths
from pipeline.io.images import GEOMETRY_TOLERANCE, Geometry
from pipeline.io.reorient import Reorientation, align_to_grid, find_reorientation

LABELS = {0: "background", 1: "liver", 2: "tumour"}
SPACING = (0.8, 1.0, 2.5)  # ITK order (x, y, z)
ORIGIN = (-10.0, 5.0, 20.0)
REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_CODES = ["".join(c) for order in itertools.permutations(["RL", "AP", "SI"]) for c in itertools.product(*order)]


def _image(array: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: array.ndim])
    image.SetOrigin(origin[: array.ndim])
    if direction is not None:
        image.SetDirection(direction)
    return image


def _write(path: Path, image: sitk.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _world_identical(moving: sitk.Image, reference: sitk.Image) -> bool:
    """Whether ``moving`` holds the reference's voxels at the same world positions (nearest resampling)."""
    resampled = sitk.Resample(moving, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 99)
    return bool(np.array_equal(sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(reference)))


@pytest.fixture
def reference(tmp_path, make_label_map) -> tuple[np.ndarray, sitk.Image, Path]:
    array = make_label_map((6, 10, 12), 3, seed=3)
    image = _image(array)
    return array, image, _write(tmp_path / "ref" / "case_7.nii.gz", image)


def _flipped_x(array: np.ndarray) -> sitk.Image:
    """World-identical to ``_image(array)``, stored with axis x running the other way."""
    origin = (ORIGIN[0] + SPACING[0] * (array.shape[2] - 1), ORIGIN[1], ORIGIN[2])
    return _image(array[:, :, ::-1], origin=origin, direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))


def _transposed(array: np.ndarray) -> sitk.Image:
    """World-identical to ``_image(array)``, stored with axes x and z swapped."""
    return _image(array.transpose(2, 1, 0), spacing=SPACING[::-1], direction=(0, 0, 1, 0, 1, 0, 1, 0, 0))


@pytest.mark.parametrize(("build", "suffix", "what"), [(_flipped_x, ".nii.gz", "flipped along x"), (_transposed, ".nrrd", "stored as (z, y, x)")])
def test_a_world_identical_prediction_in_another_orientation_scores_one(tmp_path, reference, caplog, build, suffix, what):
    array, ref_image, ref_path = reference
    moved = build(array)
    assert _world_identical(moved, ref_image)
    pred_path = _write(tmp_path / "pred" / f"case_7{suffix}", moved)
    with caplog.at_level(logging.WARNING):
        per_case, _ = evaluate_paths(ref_path.parent, pred_path.parent, tmp_path / "m.tsv", labels=LABELS)
    assert per_case["dice"].tolist() == [1.0, 1.0] and per_case["hd"].tolist() == [0.0, 0.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'case_7'" in m and what in m and "reoriented" in m and pred_path.name in m for m in warnings), warnings


def test_the_flipped_prediction_is_world_identical_but_a_different_array(reference):
    array, ref_image, _ = reference
    for moved in (_flipped_x(array), _transposed(array)):
        assert _world_identical(moved, ref_image)
        stored = sitk.GetArrayFromImage(moved)
        assert stored.shape != array.shape or not np.array_equal(stored, array)


def test_a_shifted_prediction_fails_naming_case_file_and_millimetres(tmp_path, reference):
    array, _, ref_path = reference
    pred_path = _write(tmp_path / "shifted" / "case_7.nii.gz", _image(array, origin=(ORIGIN[0] + 30.0, ORIGIN[1], ORIGIN[2])))
    with pytest.raises(GeometryError) as info:
        evaluate_paths(ref_path, pred_path, tmp_path / "m.tsv", labels=LABELS)
    message = str(info.value)
    assert "case 'case_7'" in message and str(pred_path) in message and str(ref_path) in message
    assert "origin (20.0, 5.0, 20.0) mm (prediction) differs from (-10.0, 5.0, 20.0) mm (reference) by 30.0 mm" in message
    assert isinstance(info.value, CaseError) and isinstance(info.value, ValueError)
    assert not (tmp_path / "m.tsv").exists()


def test_a_flipped_and_shifted_prediction_fails_after_reorientation(tmp_path, reference):
    array, _, ref_path = reference
    moved = _flipped_x(array)
    moved.SetOrigin((moved.GetOrigin()[0], moved.GetOrigin()[1] + 30.0, moved.GetOrigin()[2]))
    pred_path = _write(tmp_path / "both" / "case_7.nii.gz", moved)
    with pytest.raises(GeometryError, match=r"reoriented to the reference's axis order \(flipped along x\) it still differs: origin .* by 30.0 mm"):
        evaluate_paths(ref_path, pred_path, tmp_path / "m.tsv", labels=LABELS)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"spacing": (1.0, 1.0, 2.5)}, r"spacing \(1.0, 1.0, 2.5\) mm \(prediction\) differs from \(0.8, 1.0, 2.5\) mm \(reference\) by up to 0.2 mm"),
        ({"direction": tuple(sitk.VersorTransform((0, 0, 1), 0.2).GetMatrix())}, r"direction .* differs .*direction cosines"),
    ],
)
def test_other_geometry_differences_fail_naming_them(tmp_path, reference, change, pattern):
    array, _, ref_path = reference
    pred_path = _write(tmp_path / "other" / "case_7.nrrd", _image(array, **change))
    with pytest.raises(GeometryError, match=r"case 'case_7', file .*case_7.nrrd: .*" + pattern):
        evaluate_paths(ref_path, pred_path, tmp_path / "m.tsv", labels=LABELS)


def test_the_tolerance_is_the_workflows(tmp_path, reference):
    schema = yaml.safe_load((REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    assert schema["properties"]["dataset"]["properties"]["geometry_tolerance"]["default"] == GEOMETRY_TOLERANCE
    array, _, ref_path = reference
    close = _write(tmp_path / "close" / "case_7.nii.gz", _image(array, origin=(ORIGIN[0] + 0.001, ORIGIN[1], ORIGIN[2])))
    assert evaluate_paths(ref_path, close, tmp_path / "m.tsv", labels=LABELS)[0]["dice"].tolist() == [1.0, 1.0]
    with pytest.raises(GeometryError, match=r"by 0\.00100\d* mm \(tolerance 2.5e-05 mm per axis\)"):
        evaluate_paths(ref_path, close, tmp_path / "m.tsv", labels=LABELS, geometry_tolerance=1e-5)


def test_2d_predictions_are_reoriented_and_checked(tmp_path, make_label_map):
    array = make_label_map((16, 20), 3, seed=5)
    ref_path = _write(tmp_path / "r.nrrd", _image(array))
    flipped = _image(array[::-1, :], origin=(ORIGIN[0], ORIGIN[1] + 15.0), direction=(1, 0, 0, -1))
    per_case, _ = evaluate_paths(ref_path, _write(tmp_path / "p.nrrd", flipped), tmp_path / "m.tsv", labels=LABELS)
    assert per_case["dice"].tolist() == [1.0, 1.0]
    with pytest.raises(GeometryError, match=r"case 's'.*origin .* by 30.0 mm"):
        evaluate_paths(ref_path, _write(tmp_path / "s.nrrd", _image(array, origin=(ORIGIN[0], ORIGIN[1] + 30.0))), tmp_path / "m.tsv", labels=LABELS)
    for suffix in (".tif", ".png"):  # no origin or direction: identity on both sides
        _write(tmp_path / f"a{suffix}", sitk.GetImageFromArray(array))
        _write(tmp_path / f"b{suffix}", sitk.GetImageFromArray(array))
        per_case, _ = evaluate_paths(tmp_path / f"a{suffix}", tmp_path / f"b{suffix}", tmp_path / "m.tsv", labels=LABELS)
        assert per_case["dice"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_dicom_orientation_is_undone_exactly(code, make_label_map):
    array = make_label_map((4, 5, 6), 3, seed=1)
    ref = _image(array)
    moved = sitk.DICOMOrient(ref, code)
    out, how = align_to_grid(sitk.GetArrayFromImage(moved), Geometry.of(moved), Geometry.of(ref), GEOMETRY_TOLERANCE)
    assert np.array_equal(out, array) and out.flags.c_contiguous
    assert (how is None) == (code == "LPS")  # ITK's identity direction is LPS
    if how is not None:
        assert Geometry.of(ref).mismatch(how.geometry(Geometry.of(moved)), 1e-9) is None


def test_find_reorientation_refuses_oblique_and_other_dimensions():
    identity = Geometry((4, 5, 6), SPACING, ORIGIN, (1, 0, 0, 0, 1, 0, 0, 0, 1))
    oblique = Geometry((4, 5, 6), SPACING, ORIGIN, tuple(sitk.VersorTransform((0, 0, 1), np.pi / 4).GetMatrix()))
    flat = Geometry((4, 5), SPACING[:2], ORIGIN[:2], (1, 0, 0, 1))
    assert find_reorientation(identity, identity) == Reorientation((0, 1, 2), (False, False, False))
    assert find_reorientation(flat, identity) is None
    how = find_reorientation(oblique, identity)  # 45 degrees: paired, but the direction still differs
    assert how is None or identity.mismatch(how.geometry(oblique), GEOMETRY_TOLERANCE) is not None
