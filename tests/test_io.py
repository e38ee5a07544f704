"""Image I/O, manifests and the data check: every bad input gives a clear error."""

import nibabel as nib
import numpy as np
import pytest

from pipeline.atomic import atomic_path
from pipeline.errors import CaseError
from pipeline.io.cases import ManifestError, validate_case_id
from pipeline.io.check import check_case
from pipeline.io.images import Geometry, read_image, write_image
from pipeline.io.manifest import read_manifest
from tests.conftest import blob_case, write_volume

LABELS = {0: "background", 1: "outer", 2: "inner"}
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def test_geometry_round_trip_keeps_header(tmp_path):
    image, _ = blob_case()
    geometry = Geometry(size=image.shape[::-1], spacing=(0.7, 0.8, 2.5), origin=(1.0, -2.0, 3.0), direction=DIRECTION)
    for name in ("a.nii.gz", "a.nrrd", "a.mha"):
        write_image(image, geometry, tmp_path / name)
        array, read = read_image(tmp_path / name)
        assert np.array_equal(array, image)
        assert read.mismatch(geometry, 1e-6) is None
        assert np.allclose(read.spacing_numpy, (2.5, 0.8, 0.7))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def _check(case, image_path, label_path, dims=3):
    return check_case(case, [str(image_path)], str(label_path) if label_path else None, LABELS, dims, 1e-3)


def test_check_accepts_a_good_case_and_flags_an_empty_label(tmp_path):
    image, label = blob_case()
    write_volume(tmp_path / "i.nii.gz", image)
    write_volume(tmp_path / "l.nii.gz", label)
    result = _check("c", tmp_path / "i.nii.gz", tmp_path / "l.nii.gz")
    assert result["class_counts"] == np.bincount(label.ravel(), minlength=3).tolist()
    assert result["empty_label"] is False
    write_volume(tmp_path / "e.nii.gz", np.zeros_like(label))
    assert _check("c", tmp_path / "i.nii.gz", tmp_path / "e.nii.gz")["empty_label"] is True


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing", "does not exist"),
        ("truncated", "cannot be read as an image"),
        ("shape", "size .* differs"),
        ("spacing", "spacing .* differs"),
        ("origin", "origin .* differs"),
        ("direction", "direction .* differs"),
        ("label_value", r"label value\(s\) \[7\] are not declared"),
        ("non_integer", "non-integer value 0.5"),
        ("nan", "NaN or infinite"),
        ("four_d", "has 4 dimensions .* expects 3D"),
    ],
)
def test_each_bad_input_names_case_file_and_problem(tmp_path, problem, message):
    image, label = blob_case()
    image_path, label_path = tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz"
    write_volume(image_path, image)
    write_volume(label_path, label)
    bad = label_path
    if problem == "missing":
        bad = tmp_path / "nope.nii.gz"
        label_path = bad
    elif problem == "truncated":
        data = label_path.read_bytes()
        label_path.write_bytes(data[: len(data) // 2])
    elif problem == "shape":
        write_volume(label_path, label[:-1])
    elif problem == "spacing":
        write_volume(label_path, label, spacing=(1.0, 1.0, 2.0))
    elif problem == "origin":
        write_volume(label_path, label, origin=(0.0, 0.0, 5.0))
    elif problem == "direction":
        write_volume(label_path, label, direction=DIRECTION)
    elif problem == "label_value":
        label[0, 0, 0] = 7
        write_volume(label_path, label)
    elif problem == "non_integer":
        write_volume(label_path, label.astype(np.float32) * 0.5)
    elif problem == "nan":
        image[1, 1, 1] = np.nan
        write_volume(image_path, image)
        bad = image_path
    elif problem == "four_d":
        nib.save(nib.Nifti1Image(np.stack([image, image], axis=-1), np.eye(4)), image_path)
        bad = image_path
    with pytest.raises(CaseError, match=message) as info:
        _check("case_7", image_path, label_path)
    assert info.value.case == "case_7"
    assert str(bad) in str(info.value)


def test_manifest_missing_column_duplicates_and_unsafe_ids(tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("case\timage\nA\ta.nii.gz\n")
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['label'\]"):
        read_manifest(manifest, ["image"])
    manifest.write_text("case\timage\tlabel\nA\ta\tb\nA\tc\td\n")
    with pytest.raises(ManifestError, match=r"case id\(s\) \['A'\] more than once"):
        read_manifest(manifest, ["image"])
    manifest.write_text("case\timage\tlabel\n../evil\ta\tb\n")
    with pytest.raises(ManifestError, match="line 2: case id '../evil' is not allowed"):
        read_manifest(manifest, ["image"])
    manifest.write_text("case\timage\tlabel\n")
    with pytest.raises(ManifestError, match="lists no cases"):
        read_manifest(manifest, ["image"])
    for bad in ("a/b", ".hidden", "x y", "a;rm", "<script>"):
        with pytest.raises(ManifestError):
            validate_case_id(bad)


def test_manifest_resolves_paths_and_default_split(tiny_dataset):
    table = read_manifest(tiny_dataset, ["image"])
    assert list(table["split"]) == ["train", "train", "train", "test"]
    assert table.loc["c0", "image"].startswith(str(tiny_dataset.parent))
