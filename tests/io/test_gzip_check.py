"""The completeness check of gzipped images: the NIfTI trailer shortcut and the full read behind it."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.errors import CaseError
from pipeline.io.gzip_check import gzip_problem, nifti_size
from pipeline.io.images import read_image


def _write(kind: str, path, array: np.ndarray) -> None:
    if kind == "sitk":
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    else:
        image = (nib.Nifti2Image if kind == "nifti2" else nib.Nifti1Image)(array, np.eye(4))
        if kind == "nifti1+extension":
            image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment that moves the data offset"))
        nib.save(image, str(path))


@pytest.mark.parametrize("kind", ["sitk", "nifti1", "nifti1+extension", "nifti2"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_the_promised_size_is_the_stream_size(tmp_path, kind, dtype):
    """The size a NIfTI header promises is what the gzip stream holds, for every writer and voxel type."""
    path = tmp_path / "x.nii.gz"
    _write(kind, path, (np.random.default_rng(0).random((5, 7, 9)) * 100).astype(dtype))
    assert nifti_size(path) == len(gzip.decompress(path.read_bytes()))
    assert gzip_problem(path) is None


@pytest.mark.parametrize("keep", [0.2, 0.6, 0.99])
def test_a_cut_file_is_found_wherever_it_was_cut(tmp_path, keep):
    path = tmp_path / "x.nii.gz"
    _write("sitk", path, (np.random.default_rng(1).random((20, 30, 40)) * 1000).astype(np.int16))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert "truncated gzip stream" in gzip_problem(path)


def test_a_stream_with_appended_bytes_is_read_in_full(tmp_path):
    """A trailer that does not match the header (bytes appended after the stream) falls back to the full read."""
    path = tmp_path / "x.nii.gz"
    _write("nifti1", path, np.zeros((4, 4, 4), np.int16))
    path.write_bytes(path.read_bytes() + b"garbage!")
    assert gzip_problem(path) is not None


def test_corrupt_data_in_the_middle_is_found(tmp_path):
    path = tmp_path / "x.nii.gz"
    _write("sitk", path, (np.random.default_rng(2).random((20, 30, 40)) * 1000).astype(np.int16))
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    assert "corrupt gzip data" in gzip_problem(path, full=True)
    with pytest.raises(CaseError, match="corrupt gzip data"):  # SimpleITK refuses it, and the message says why
        read_image(path, "c1")
