"""The brain demo's varied acquisitions (demo.vary_acquisition): backgrounds, dtypes, ranges, voxel sizes."""

import numpy as np
import SimpleITK as sitk

from pipeline.demo import brain


def test_acquisitions_mix_backgrounds_dtypes_and_voxel_sizes_around_the_demo_spacing():
    acquisitions = [brain.acquisition(i, seed=0, spacing_mm=2.0) for i in range(12)]
    assert {a.background for a in acquisitions} == {"zero", "noisy"}
    assert {a.dtype for a in acquisitions} == {"float32", "uint8", "int16"}
    spacings = [a.spacing_mm for a in acquisitions]
    assert {1.5, 2.0, 2.5} <= set(spacings) and np.median(spacings) == 2.0  # the plan's target stays 2 mm
    assert brain.acquisition(5, seed=0) == brain.acquisition(5, seed=0)  # seeded
    for a in acquisitions:
        low, high = dict(brain.DTYPE_RANGES)[a.dtype]
        assert low <= a.top <= high


def test_stored_intensities_zero_the_outside_and_fit_the_dtype():
    image = np.linspace(0, 100, 60, dtype=np.float32).reshape(3, 4, 5)
    inside = image > 30
    acq = brain.Acquisition(2.0, "zero", "uint8", 133.0)
    out = brain.stored_intensities(image, inside, acq)
    assert out.dtype == np.uint8 and out.max() == 133 and np.all(out[~inside] == 0) and np.all(out[inside] > 0)
    noisy = brain.stored_intensities(image, inside, brain.Acquisition(2.0, "noisy", "int16", 3000.0))
    assert noisy.dtype == np.int16 and noisy.max() == 3000 and noisy[0, 0, 1] > 0


def test_varied_case_keeps_the_anatomy_and_is_skull_stripped(tmp_path):
    index = 4  # background zero, uint8, the demo's spacing
    acq = brain.acquisition(index, seed=0, spacing_mm=6.0)
    assert (acq.background, acq.dtype, acq.spacing_mm) == ("zero", "uint8", 6.0)
    brain.make_case(index, tmp_path / "plain.nii.gz", tmp_path / "plain_label.nii.gz", spacing_mm=6.0)
    brain.make_case(index, tmp_path / "varied.nii.gz", tmp_path / "varied_label.nii.gz", spacing_mm=6.0, vary=True)
    plain, varied = sitk.ReadImage(str(tmp_path / "plain.nii.gz")), sitk.ReadImage(str(tmp_path / "varied.nii.gz"))
    assert varied.GetPixelID() == sitk.sitkUInt8 and plain.GetPixelID() == sitk.sitkFloat32
    labels = [sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{n}_label.nii.gz"))) for n in ("plain", "varied")]
    assert np.array_equal(*labels)  # the same anatomy
    v, p = sitk.GetArrayFromImage(varied), sitk.GetArrayFromImage(plain)
    assert np.mean(v == 0) > np.mean(p == 0) + 0.2  # exact zeros outside the brain
    assert np.all(v[labels[0] > 0] > 0)  # but not inside it
