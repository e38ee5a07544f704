"""Unusable geometry in real image headers: the check fails naming the case, the file and the value.

SimpleITK reads a NIfTI ``pixdim`` of 0 or NaN as 1 mm and a negative one as its absolute
value, and a non-finite MetaImage offset as 0; the files here are written with such headers
(byte by byte where the writers would not) and each test shows what SimpleITK alone makes
of them.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
import yaml

from pipeline.__main__ import main
from pipeline.errors import CaseError
from pipeline.io.check import check_case, header_geometry
from pipeline.io.images import geometry_problem, read_image, read_sitk
from tests.conftest import blob_case, write_volume

LABELS = {0: "background", 1: "outer", 2: "inner"}
SPACING = (1.0, 1.0, 1.5)
#: Byte offsets in a NIfTI-1 header.
PIXDIM_1, QFORM_CODE, SFORM_CODE, QOFFSET_X, SROW_X, SROW_Y = 80, 252, 254, 268, 280, 296


def _nifti(path: Path, array: np.ndarray, patches: dict[int, bytes]) -> Path:
    """Write ``array`` as NIfTI with SimpleITK, then overwrite header bytes (``{offset: bytes}``)."""
    plain = write_volume(path.with_name("plain_" + path.name.replace(".gz", "")), array, spacing=SPACING)
    data = bytearray(plain.read_bytes())
    for offset, value in patches.items():
        data[offset : offset + len(value)] = value
    path.write_bytes(gzip.compress(bytes(data)) if path.name.endswith(".gz") else bytes(data))
    return path


def _case(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    image, label = blob_case()
    return write_volume(tmp_path / "image.nii.gz", image, SPACING), write_volume(tmp_path / "label.nii.gz", label, SPACING), image, label


def _fails(case: str, channels: list[Path], label: Path | None, *needles: str) -> CaseError:
    with pytest.raises(CaseError) as info:
        check_case(case, [str(c) for c in channels], str(label) if label else None, LABELS, 3, 1e-3)
    assert info.value.case == case
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    return info.value


@pytest.mark.parametrize(("value", "shown"), [(0.0, "(0.0, 1.0, 1.5)"), (-2.0, "(-2.0, 1.0, 1.5)"), (math.nan, "(nan, 1.0, 1.5)")])
@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
def test_nifti_pixdim_zero_negative_or_nan_fails_the_check(tmp_path, value, shown, ending):
    image_path, label_path, image, _ = _case(tmp_path)
    bad = _nifti(tmp_path / f"bad{ending}", image, {PIXDIM_1: struct.pack("<f", value)})
    spacing = sitk.ReadImage(str(bad)).GetSpacing()
    assert spacing[0] > 0 and np.isfinite(spacing[0])  # what SimpleITK alone makes of the header
    error = _fails("c7", [bad], label_path, "pixdim[1:4]", shown, "NIfTI header")
    assert error.path == str(bad)
    assert header_geometry(image_path)[1]["spacing pixdim[1:4]"] == list(SPACING)


def test_a_label_with_zero_pixdim_names_the_label_file(tmp_path):
    image_path, _, _, label = _case(tmp_path)
    bad = _nifti(tmp_path / "bad_label.nii.gz", label, {PIXDIM_1 + 4: struct.pack("<f", 0.0)})
    error = _fails("c3", [image_path], bad, "label:", "(1.0, 0.0, 1.5)")
    assert error.path == str(bad)


def test_nifti_non_finite_origin_and_singular_sform_fail(tmp_path):
    image_path, label_path, image, _ = _case(tmp_path)
    qform_only = {QFORM_CODE: struct.pack("<hh", 1, 0), QOFFSET_X: struct.pack("<f", math.nan)}
    bad = _nifti(tmp_path / "nan_origin.nii.gz", image, qform_only)
    assert all(np.isfinite(sitk.ReadImage(str(bad)).GetOrigin()))  # SimpleITK hides the NaN
    _fails("c1", [bad], label_path, "qform offset", "nan", "not finite")
    srow_x = gzip.decompress(image_path.read_bytes())[SROW_X : SROW_X + 16]
    singular = _nifti(tmp_path / "singular.nii.gz", image, {SROW_Y: srow_x})  # y axis = x axis
    _fails("c1", [singular], label_path, "direction sform", "singular")


def _nrrd(tmp_path: Path, name: str, old: bytes, new: bytes) -> Path:
    image, _ = blob_case()
    good = tmp_path / f"good_{name}"
    write_volume(good, image, SPACING)
    data = good.read_bytes()
    assert old in data
    (tmp_path / name).write_bytes(data.replace(old, new, 1))
    return tmp_path / name


def test_nrrd_with_zero_spacing_fails_naming_the_value(tmp_path):
    label = write_volume(tmp_path / "label.nrrd", blob_case()[1], SPACING)
    directions = b"space directions: (1,0,0) (0,1,0) (0,0,1.5)"
    zero = _nrrd(tmp_path, "zero.nrrd", directions, b"space directions: (0,0,0) (0,1,0) (0,0,1.5)")
    _fails("n1", [zero], label, "spacing (0.0, 1.0, 1.5)", "NRRD header", "> 0 mm")
    spacings = _nrrd(tmp_path, "spacings.nrrd", directions, b"spacings: 0 1 1.5")
    _fails("n2", [spacings], label, "spacing (0.0, 1.0, 1.5)", "NRRD header")
    collinear = _nrrd(tmp_path, "collinear.nrrd", directions, b"space directions: (1,0,0) (2,0,0) (0,0,1.5)")
    _fails("n3", [collinear], label, "singular")
    origin = _nrrd(tmp_path, "origin.nrrd", b"space origin: (0,0,0)", b"space origin: (nan,0,0)")
    _fails("n4", [origin], label, "origin (nan, 0.0, 0.0)")
    assert check_case("ok", [str(tmp_path / "good_zero.nrrd")], str(label), LABELS, 3, 1e-3)["spacing"] == list(SPACING)


def test_metaimage_nan_offset_and_negative_spacing_fail(tmp_path):
    label = write_volume(tmp_path / "label.mha", blob_case()[1], SPACING)
    nan_offset = _nrrd(tmp_path, "offset.mha", b"Offset = 0 0 0", b"Offset = nan 0 0")
    assert sitk.ReadImage(str(nan_offset)).GetOrigin() == (0.0, 0.0, 0.0)  # SimpleITK reads NaN as 0
    _fails("m1", [nan_offset], label, "origin (nan, 0.0, 0.0)", "MetaImage header")
    negative = _nrrd(tmp_path, "negative.mha", b"ElementSpacing = 1 1 1.5", b"ElementSpacing = -1 1 1.5")
    assert sitk.ReadImage(str(negative)).GetSpacing()[0] == 1.0  # SimpleITK flips the axis instead
    _fails("m2", [negative], label, "spacing (-1.0, 1.0, 1.5)")


def test_tiff_with_zero_slice_spacing_fails_on_reading(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint8), imagej=True, resolution=(1.0, 1.0), metadata={"spacing": 0.0, "unit": "mm", "axes": "ZYX"})
    with pytest.raises(CaseError, match=r"spacing \(1.0, 1.0, 0.0\)") as info:
        read_image(path, "t1")
    assert info.value.case == "t1" and info.value.path == str(path)
    with pytest.raises(CaseError, match="TIFF resolution tags"):
        read_sitk(path, "t1")


def test_geometry_problem_of_values_as_read():
    assert geometry_problem({"spacing": (1, 1, 1), "origin": (0, 0, 0), "direction": np.eye(3).ravel()}, "x") is None
    assert "not finite" in geometry_problem({"origin": (0, math.inf, 0)}, "x")
    assert "singular" in geometry_problem({"direction": (1, 0, 0, 1, 0, 0, 0, 0, 1)}, "x")
    assert "> 0 mm" in geometry_problem({"spacing": (1, 0)}, "x")


def test_check_stage_names_the_case_file_and_value(tiny_dataset, tmp_path, capsys):
    root = tiny_dataset.parent
    image, _ = blob_case(seed=1)
    bad = _nifti(root / "images" / "c1.nii.gz", image, {PIXDIM_1 + 8: struct.pack("<f", 0.0)})
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"dataset": {"manifest": str(tiny_dataset), "labels": LABELS}, "experiments": {"tiny": {"model": {"name": "unet", "channels": [4, 8]}}}})
    )
    assert main(["check", "--config", str(config), "--case", "c1", "--output", str(tmp_path / "c1.json")]) == 1
    err = capsys.readouterr().err
    assert "case 'c1'" in err and str(bad) in err and "spacing pixdim[1:4] (1.0, 1.0, 0.0)" in err
    assert not (tmp_path / "c1.json").exists()
