"""Normalisation that means the same on every scan: zero or noisy background, any intensity range."""

import numpy as np
import pytest

from pipeline.config import validate_config
from pipeline.preprocessing.normalisation import BACKGROUND, channel_normalisation, foreground_mask, normalise, otsu_threshold
from pipeline.preprocessing.plan import make_plan
from tests.conftest import write_volume

SETTINGS = {"scheme": "zscore_foreground", "foreground": "otsu", "smoothing_voxels": 1.0, "background": -4.0}


def _head(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy 'scan' (numpy order): a ball of two tissues and a dark core in a noisy background, and the ball."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:32, :36, :34]
    r = np.sqrt((zz - 16) ** 2 + (yy - 18) ** 2 + (xx - 17) ** 2)
    ball = r < 12
    image = np.where(ball, 120.0, 0.0) + np.where(r < 7, 60.0, 0.0) - np.where(r < 2.5, 100.0, 0.0)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, None).astype(np.float32)
    return image, ball


def test_otsu_threshold_separates_two_populations():
    values = np.concatenate([np.full(100, 10.0), np.full(50, 90.0)])
    assert 10 < otsu_threshold(values) <= 90
    assert otsu_threshold(np.full(5, 3.0)) == 3.0


def test_zeroed_background_gives_the_same_values_inside_the_foreground():
    noisy, ball = _head()
    zeroed = np.where(ball, noisy, 0).astype(np.float32)  # skull-stripped: exact zeros outside
    mask, mask_zeroed = foreground_mask(noisy, "otsu"), foreground_mask(zeroed, "otsu")
    # The Otsu threshold moves a little with the background's histogram: a voxel or two of 7,000.
    assert np.sum(mask != mask_zeroed) <= 0.001 * mask.sum()
    assert mask[16, 18, 17]  # the dark core is enclosed: filled, part of the foreground
    a, b = normalise(noisy, SETTINGS), normalise(zeroed, SETTINGS)
    both = mask & mask_zeroed
    np.testing.assert_allclose(a[both], b[both], atol=1e-3)
    assert np.all(a[~mask] == -4.0) and np.all(b[~mask_zeroed] == -4.0)
    assert abs(a[mask].mean()) < 1e-4 and a[mask].std() == pytest.approx(1.0, abs=1e-4)
    # The scheme of older plans differs by far on the same pair: it counts noise as foreground.
    old_a, old_b = normalise(noisy, {"scheme": "zscore_nonzero"}), normalise(zeroed, {"scheme": "zscore_nonzero"})
    assert np.abs(old_a[both] - old_b[both]).max() > 0.5


def test_other_intensity_ranges_and_dtypes_normalise_alike():
    noisy, _ = _head(1)
    reference = normalise(noisy, SETTINGS)
    as_uint8 = np.round(noisy / noisy.max() * 133).astype(np.uint8)
    as_int16 = np.round(noisy * 20 + 7).astype(np.int16)  # another scale and an offset
    mask = foreground_mask(noisy, "otsu")
    for other in (as_uint8, as_int16):
        out = normalise(other, SETTINGS)
        assert out.dtype == np.float32
        assert np.mean(foreground_mask(other, "otsu") == mask) > 0.999
        assert np.median(np.abs(out - reference)[mask]) < 0.02


def test_nonzero_foreground_and_unknown_settings():
    channel = np.zeros((4, 5), np.float32)
    channel[1:3, 1:4] = [[1, 2, 3], [4, 5, 6]]
    out = normalise(channel, {**SETTINGS, "foreground": "nonzero"})
    assert np.all(out[channel == 0] == -4.0) and abs(out[channel != 0].mean()) < 1e-6
    with pytest.raises(ValueError, match="foreground 'edges'"):
        normalise(channel, {**SETTINGS, "foreground": "edges"})
    with pytest.raises(ValueError, match="scheme 'minmax'"):
        normalise(channel, {"scheme": "minmax"})


def test_plan_records_the_scheme_per_channel_with_its_reason():
    config = validate_config(
        {
            "dataset": {
                "manifest": "m",
                "channels": [{"name": "t1", "modality": "mri"}, {"name": "ct", "modality": "ct"}, {"name": "dapi", "modality": "microscopy"}],
                "labels": {0: "bg", 1: "a"},
            },
            "plan": {"mri_normalisation": "foreground"},
            "experiments": {"e": {}},
        }
    )
    stats = {"mean": 100.0, "std": 25.0, "percentile_00_5": 40.0, "percentile_50_0": 100.0, "percentile_99_5": 170.0}
    fingerprint = {
        "spacings": [[1.0, 1.0, 1.0]],
        "shapes": [[20, 20, 20]],
        "intensity": {c: stats for c in ("t1", "ct", "dapi")},
        "class_totals": {"bg": 9, "a": 1},
    }
    normalisation = make_plan(fingerprint, config)["normalisation"]
    assert normalisation["t1"]["scheme"] == "zscore_foreground" and normalisation["t1"]["foreground"] == "otsu"
    assert normalisation["t1"]["background"] == BACKGROUND < -3  # below the tissue, whatever the scans' ranges
    assert normalisation["ct"]["scheme"] == "ct" and normalisation["ct"]["clip"] == [40.0, 170.0]
    assert normalisation["dapi"]["scheme"] == "zscore_nonzero"
    assert all(entry["reason"] for entry in normalisation.values())
    assert channel_normalisation("other", stats)["scheme"] == "zscore_nonzero"
    # The default (plan.mri_normalisation nonzero): MRI keeps the scheme the demo was tuned with.
    assert channel_normalisation("mri", stats, "nonzero")["scheme"] == "zscore_nonzero"


def test_prediction_and_training_preprocess_identically(tmp_path):
    """Training cases (with label) and new images (without) go through the same function and plan."""
    from pipeline.preprocessing import preprocess
    from pipeline.tasks.segmentation import new_images

    assert new_images.preprocess_case is preprocess.preprocess_case
    noisy, ball = _head(2)
    label = ball.astype(np.uint8)
    image_path = write_volume(tmp_path / "i.nii.gz", noisy, spacing=(1.2, 1.0, 1.0))
    label_path = write_volume(tmp_path / "l.nii.gz", label, spacing=(1.2, 1.0, 1.0))
    config = validate_config(
        {
            "dataset": {"manifest": "m", "labels": {0: "bg", 1: "a"}},
            "plan": {"target_spacing": [1.5, 1.5, 1.5], "mri_normalisation": "foreground"},
            "experiments": {"e": {}},
        }
    )
    stats = {"mean": 130.0, "std": 30.0, "percentile_00_5": 60.0, "percentile_50_0": 120.0, "percentile_99_5": 180.0}
    plan = make_plan({"spacings": [[1.2, 1.0, 1.0]], "shapes": [list(noisy.shape)], "intensity": {"image": stats}, "class_totals": {"bg": 9, "a": 1}}, config)
    trained = preprocess.preprocess_case("c", [str(image_path)], str(label_path), plan, tmp_path / "train")
    predicted = preprocess.preprocess_case("c", [str(image_path)], None, plan, tmp_path / "predict")
    assert np.array_equal(np.load(tmp_path / "train" / "image.npy"), np.load(tmp_path / "predict" / "image.npy"))
    assert trained["resampled_geometry"] == predicted["resampled_geometry"] and trained["crop_box"] == predicted["crop_box"]
    # A skull-stripped copy of the scan is preprocessed to the same values inside the foreground.
    write_volume(tmp_path / "z.nii.gz", np.where(ball, noisy, 0).astype(np.float32), spacing=(1.2, 1.0, 1.0))
    plan_no_crop = {**plan, "preprocessing": {**plan["preprocessing"], "crop_to_nonzero": False}}
    preprocess.preprocess_case("c", [str(image_path)], None, plan_no_crop, tmp_path / "noisy")
    preprocess.preprocess_case("c", [str(tmp_path / "z.nii.gz")], None, plan_no_crop, tmp_path / "zeroed")
    a, b = np.load(tmp_path / "noisy" / "image.npy"), np.load(tmp_path / "zeroed" / "image.npy")
    assert np.mean(a > plan["normalisation"]["image"]["background"]) > 0.1 and np.abs(a - b).max() < 1e-4
