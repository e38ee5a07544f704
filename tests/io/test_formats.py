"""Every supported image format is read back with its voxels and its geometry."""

import locale

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile

from pipeline.errors import CaseError
from pipeline.io.images import Geometry, read_image, read_sitk, write_image
from tests.conftest import blob_case

DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
GEOMETRY = dict(spacing=(0.7, 0.8, 2.5), origin=(1.0, -2.0, 3.0), direction=DIRECTION)


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz", "a.nrrd", "a.mha", "a.mhd"])
def test_volume_formats_keep_voxels_and_geometry(tmp_path, name):
    image, _ = blob_case()
    geometry = Geometry(size=image.shape[::-1], **GEOMETRY)
    write_image(image, geometry, tmp_path / name)
    array, read = read_image(tmp_path / name)
    assert np.array_equal(array, image)
    assert read.mismatch(geometry, 1e-6) is None
    assert np.allclose(read.spacing_numpy, (2.5, 0.8, 0.7))


def write_dicom_series(folder, volume, spacing, origin, direction):
    """One DICOM file per slice with the tags a series reader needs (after SimpleITK's example).

    Writing DICOM (GDCM) sets the process locale to "C", after which Python's default text
    encoding is ASCII (torch.compile then fails to read its templates): restored afterwards."""
    saved = locale.setlocale(locale.LC_ALL)
    folder.mkdir(parents=True)
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.42"
    # DICOM ImageOrientationPatient: the row (x) and column (y) direction cosines.
    orientation = "\\".join(str(direction[i]) for i in (0, 3, 6, 1, 4, 7))
    for z in range(image.GetDepth()):
        slice_ = image[:, :, z]
        for tag, value in {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1.41",
            "0020|000e": series_uid,
            "0020|0037": orientation,
            "0018|0050": str(spacing[2]),
            "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, z)))),
            "0020|0013": str(z + 1),
            "0008|0018": f"{series_uid}.{z + 1}",
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{z:03d}.dcm"))
        writer.Execute(slice_)
    locale.setlocale(locale.LC_ALL, saved)


def test_dicom_series_folder_keeps_voxels_and_geometry(tmp_path):
    image, _ = blob_case()
    volume = (image * 10).astype(np.int16)
    write_dicom_series(tmp_path / "series", volume, **GEOMETRY)
    before = locale.setlocale(locale.LC_ALL)
    array, read = read_image(tmp_path / "series")
    assert locale.setlocale(locale.LC_ALL) == before  # reading a series leaves the locale alone
    assert np.array_equal(array, volume.astype(np.float32))
    assert read.mismatch(Geometry(size=volume.shape[::-1], **GEOMETRY), 1e-4) is None


def test_folder_without_dicom_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaseError, match="holds no DICOM series"):
        read_image(tmp_path / "empty", "c1")


def test_png_2d_keeps_pixels_and_spacing(tmp_path):
    pixels = (np.arange(20 * 30).reshape(20, 30) % 251).astype(np.uint8)
    geometry = Geometry(size=(30, 20), spacing=(0.5, 0.25), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0))
    write_image(pixels, geometry, tmp_path / "a.png")
    array, read = read_image(tmp_path / "a.png", dtype=None)
    assert array.dtype == np.uint8 and np.array_equal(array, pixels)
    assert read.mismatch(geometry, 1e-6) is None


def test_tiff_2d_resolution_in_centimetres_becomes_mm(tmp_path):
    pixels = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    tifffile.imwrite(tmp_path / "a.tif", pixels, resolution=(40.0, 20.0), resolutionunit="CENTIMETER")  # 0.25 x 0.5 mm
    array, read = read_image(tmp_path / "a.tif", dtype=None)
    assert array.dtype == np.uint16 and np.array_equal(array, pixels)
    assert read == Geometry(size=(30, 20), spacing=(0.25, 0.5), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0))


def test_multipage_imagej_tiff_is_a_volume_with_spacing_in_mm(tmp_path):
    stack = np.random.default_rng(0).integers(0, 255, (5, 20, 30)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tiff", stack, imagej=True, resolution=(1 / 0.2, 1 / 0.3), metadata={"spacing": 1.5, "unit": "micron", "axes": "ZYX"})
    array, read = read_image(tmp_path / "a.tiff")
    assert np.array_equal(array, stack.astype(np.float32))
    assert read.size == (30, 20, 5)
    assert np.allclose(read.spacing, (0.0002, 0.0003, 0.0015))
    assert read_sitk(tmp_path / "a.tiff").GetSize() == (30, 20, 5)


@pytest.mark.parametrize("metadata", [None, {}])
def test_plain_multipage_tiff_stacks_pages_along_z(tmp_path, metadata):
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for z in range(3):
            tif.write(np.full((8, 9), z, np.uint8), contiguous=False, metadata=metadata)
    array, read = read_image(tmp_path / "pages.tif")
    assert array.shape == (3, 8, 9) and list(array[:, 0, 0]) == [0, 1, 2]
    assert read.spacing == (1.0, 1.0, 1.0)


def test_tiff_write_read_round_trip_keeps_spacing(tmp_path):
    image, label = blob_case()
    geometry = Geometry(size=image.shape[::-1], spacing=(0.7, 0.8, 2.5), origin=(0.0,) * 3, direction=tuple(np.eye(3).ravel()))
    write_image(label, geometry, tmp_path / "l.tif")
    array, read = read_image(tmp_path / "l.tif", dtype=None)
    assert np.array_equal(array, label) and read.mismatch(geometry, 1e-6) is None
    with pytest.raises(ValueError, match="TIFF cannot store origin"):
        write_image(label, Geometry(size=image.shape[::-1], **GEOMETRY), tmp_path / "x.tif")


def test_rgb_tiff_is_averaged_and_channel_tiff_is_an_error(tmp_path):
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 30, 60
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    array, _ = read_image(tmp_path / "rgb.tif")
    assert array.shape == (6, 7) and np.allclose(array, 30.0)
    tifffile.imwrite(tmp_path / "ch.tif", np.zeros((2, 6, 7), np.uint16), imagej=True, metadata={"axes": "CYX"})
    with pytest.raises(CaseError, match="TIFF holds 2 channels .* one file per channel") as info:
        read_image(tmp_path / "ch.tif", "c3")
    assert "ch.tif" in str(info.value) and info.value.case == "c3"


def test_truncated_tiff_is_a_clear_error(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.ones((64, 64), np.uint16))
    data = (tmp_path / "a.tif").read_bytes()
    (tmp_path / "a.tif").write_bytes(data[:200])
    with pytest.raises(CaseError, match="cannot be read as a TIFF"):
        read_image(tmp_path / "a.tif", "c")
