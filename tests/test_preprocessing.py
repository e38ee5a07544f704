"""Planning, preprocessing and its exact inverse."""

import numpy as np
import pytest

from pipeline.config import validate_config
from pipeline.io.images import Geometry, read_image
from pipeline.preprocessing.inverse import restore_labels
from pipeline.preprocessing.plan import class_weights, kfold_splits, make_plan, patch_size, target_spacing
from pipeline.preprocessing.preprocess import nonzero_box, preprocess_case
from tests.conftest import write_volume

DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def test_target_spacing_median_and_anisotropic_coarse_axis():
    iso = np.array([[1.0, 1.0, 1.0], [1.2, 1.2, 1.2], [0.8, 0.8, 0.8]])
    assert target_spacing(iso) == [1.0, 1.0, 1.0]
    aniso = np.array([[0.8, 0.8, 5.0]] * 5 + [[0.8, 0.8, 3.0]] * 5)
    assert target_spacing(aniso)[2] == pytest.approx(3.0)


def test_patch_size_respects_budget_and_multiples():
    patch = patch_size([94, 116, 98], 48**3)
    assert all(p % 16 == 0 for p in patch) and np.prod(patch) <= 48**3


def test_class_weights_schemes():
    totals = [900, 90, 10]
    assert class_weights(totals, "none") == [1.0, 1.0, 1.0]
    inv = class_weights(totals, "inverse_frequency")
    assert inv[2] > inv[1] > inv[0] and np.mean(inv) == pytest.approx(1.0, abs=1e-5)
    sqrt = class_weights(totals, "inverse_sqrt")
    assert sqrt[2] / sqrt[0] == pytest.approx(np.sqrt(90), rel=1e-4)
    assert class_weights([5, 5, 0], "median_frequency")[2] == pytest.approx(1.0)


def test_kfold_splits_partition_the_training_cases():
    cases = [f"c{i}" for i in range(11)]
    folds = kfold_splits(cases, 5, seed=1)
    assert sorted(c for f in folds for c in f["val"]) == sorted(cases)
    for f in folds:
        assert not set(f["train"]) & set(f["val"])
    assert folds == kfold_splits(cases, 5, seed=1)
    with pytest.raises(ValueError, match="only 3 training cases"):
        kfold_splits(cases[:3], 5, 0)


def _plan(spacing, crop=True):
    config = validate_config({"dataset": {"manifest": "m", "labels": {0: "bg", 1: "a", 2: "b"}}, "plan": {"target_spacing": spacing}, "preprocessing": {"crop_to_nonzero": crop}, "experiments": {"e": {}}})
    fingerprint = {"spacings": [[1.0, 1.0, 3.0]], "shapes": [[10, 20, 20]], "intensity": {"image": {}}, "class_totals": {"bg": 10, "a": 5, "b": 1}}
    return make_plan(fingerprint, config)


def _case(tmp_path, spacing=(0.9, 1.1, 3.0)):
    rng = np.random.default_rng(0)
    label = np.zeros((10, 24, 20), np.uint8)
    yy, xx = np.mgrid[:24, :20]
    for z in range(2, 8):
        label[z][(yy - 12) ** 2 + (xx - 10) ** 2 < 40] = 1
        label[z][(yy - 12) ** 2 + (xx - 10) ** 2 < 10] = 2
    image = np.zeros(label.shape, np.float32)
    image[1:9, 3:21, 2:18] = 10 + 30 * label[1:9, 3:21, 2:18] + rng.normal(0, 1, (8, 18, 16))
    kwargs = dict(spacing=spacing, origin=(5.0, -3.0, 2.0), direction=DIRECTION)
    return write_volume(tmp_path / "i.nii.gz", image, **kwargs), write_volume(tmp_path / "l.nii.gz", label, **kwargs), label


def test_preprocess_crops_and_inverse_is_exact_without_resampling(tmp_path):
    image_path, label_path, label = _case(tmp_path)
    plan = _plan([0.9, 1.1, 3.0])
    props = preprocess_case("c", [str(image_path)], str(label_path), plan, tmp_path / "out")
    stored = np.load(tmp_path / "out" / "label.npy")
    assert stored.shape == (8, 18, 16)  # cropped to the nonzero box
    assert props["crop_box"] == [[1, 9], [3, 21], [2, 18]]
    image = np.load(tmp_path / "out" / "image.npy")
    assert image.shape == (1, 8, 18, 16) and abs(float(image[0][image[0] != 0].mean())) < 1e-4
    assert np.array_equal(restore_labels(stored, props), label)


def test_inverse_after_resampling_recovers_the_label(tmp_path):
    image_path, label_path, label = _case(tmp_path)
    props = preprocess_case("c", [str(image_path)], str(label_path), _plan([0.6, 0.6, 1.5]), tmp_path / "out")
    stored = np.load(tmp_path / "out" / "label.npy")
    assert stored.shape[0] > 8  # resampled to a finer grid
    back = restore_labels(stored, props)
    assert back.shape == label.shape
    for k in (1, 2):
        dice = 2 * np.sum((back == k) & (label == k)) / (np.sum(back == k) + np.sum(label == k))
        assert dice > 0.98 if k == 1 else dice > 0.9
    original = Geometry.from_dict(props["original_geometry"])
    _, geo = read_image(label_path)
    assert original == geo


def test_nonzero_box_of_empty_image_is_full_extent():
    assert nonzero_box(np.zeros((1, 3, 4))) == ((0, 3), (0, 4))
