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
    few_slices = np.array([[30, 512, 512]] * 10)  # numpy order: 30 slices of 512 x 512
    assert target_spacing(aniso, few_slices)[2] == pytest.approx(3.0)
    many_slices = np.array([[400, 512, 512]] * 10)  # the coarse axis has many voxels: keep the median
    assert target_spacing(aniso, many_slices)[2] == pytest.approx(4.0)


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
    config = validate_config(
        {
            "dataset": {"manifest": "m", "labels": {0: "bg", 1: "a", 2: "b"}},
            "plan": {"target_spacing": spacing},
            "preprocessing": {"crop_to_nonzero": crop},
            "experiments": {"e": {}},
        }
    )
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
    background = plan["normalisation"]["image"].get("background", 0.0)  # zscore_nonzero (the default): 0 outside
    assert image.shape == (1, 8, 18, 16) and abs(float(image[0][~np.isclose(image[0], background)].mean())) < 1e-4
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


def test_coarse_axis_is_resampled_apart_for_anisotropic_data():
    from pipeline.preprocessing.resample import coarse_axis, grid_for_spacing, resample_array, resample_label

    eye = tuple(np.eye(3).ravel())
    source = Geometry(size=(40, 30, 12), spacing=(0.8, 0.8, 2.5), origin=(1.0, 2.0, 3.0), direction=eye)
    target = grid_for_spacing(source, (1.25, 1.25, 1.25))
    assert coarse_axis(source, target) == 2
    assert coarse_axis(source, grid_for_spacing(source, (0.8, 0.8, 1.0))) == 2  # the source decides first
    iso = Geometry(size=(10, 10, 10), spacing=(1.0, 1.0, 2.0), origin=(0.0,) * 3, direction=eye)
    assert coarse_axis(iso, grid_for_spacing(iso, (1.0, 1.0, 1.0))) is None
    rng = np.random.default_rng(0)
    image = rng.normal(size=source.shape_numpy).astype(np.float32)
    label = rng.integers(0, 3, size=source.shape_numpy).astype(np.uint8)
    # Nearest along the coarse axis copies whole slices: the slice at z = 2.5 mm * k of the
    # in-plane-resampled volume is the in-plane resampling of slice k.
    up = resample_array(image, source, target, "linear", coarse="nearest")
    inplane = resample_array(image, source, Geometry(size=(*target.size[:2], 12), spacing=(1.25, 1.25, 2.5), origin=source.origin, direction=eye), "linear")
    for k in range(12):
        assert np.array_equal(up[int(round(k * 2.5 / 1.25))], inplane[k])
    joint = resample_array(image, source, target, "linear")
    assert not np.allclose(up, joint)
    labels_up = resample_label(label, source, target, "linear_onehot", 3, coarse="nearest")
    assert labels_up.shape == target.shape_numpy and set(np.unique(labels_up)) <= {0, 1, 2}
    reference = resample_label(label, source, target, "linear_onehot", 3, coarse="nearest", method="simpleitk")
    assert np.mean(labels_up[:, :-1, :-1] == reference[:, :-1, :-1]) > 0.99
    assert resample_label(label, source, target, "linear_onehot", 3, coarse="linear").shape == target.shape_numpy


def test_normalise_zscore_inside_the_nonzero_mask_and_ct_clip():
    from pipeline.preprocessing.preprocess import normalise

    channel = np.zeros((30, 40), np.float32)
    channel[5:25, 5:35] = np.random.default_rng(0).normal(100, 20, (20, 30))
    out = normalise(channel, {"scheme": "zscore_nonzero"})
    inside = out[channel != 0]
    assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-4 and np.all(out[channel == 0] == 0)
    ct = normalise(np.array([-2000.0, 0.0, 3000.0], np.float32), {"scheme": "ct", "clip": [-1000, 1000], "mean": 0.0, "std": 500.0})
    assert ct.dtype == np.float32 and ct.tolist() == [-2.0, 0.0, 2.0]


@pytest.mark.parametrize("interpolation", ["nearest", "linear", "bspline"])
@pytest.mark.parametrize("spacing", [(1.3, 0.45, 2.0), (0.5, 0.5, 0.5), (2.0, 2.0, 1.0)])
def test_separable_resampling_equals_simpleitk(interpolation, spacing):
    from pipeline.preprocessing.resample import grid_for_spacing, resample_array, resample_label

    rng = np.random.default_rng(1)
    source = Geometry(size=(23, 17, 11), spacing=(0.9, 1.1, 1.5), origin=(5.0, -3.0, 2.0), direction=DIRECTION)
    target = grid_for_spacing(source, spacing)
    array = rng.normal(size=source.shape_numpy).astype(np.float32)
    fast = resample_array(array, source, target, interpolation)
    reference = resample_array(array, source, target, interpolation, method="simpleitk")
    assert fast.shape == reference.shape == target.shape_numpy and fast.dtype == reference.dtype
    # Compared inside the source's extent (beyond its last voxel centre the separable
    # resampler repeats the edge value; SimpleITK extrapolates its kernel there) and away
    # from exact nearest-neighbour ties, which float rounding breaks either way.
    inside = np.ones(target.shape_numpy, dtype=bool)
    for axis, (n_in, n_out, s, t) in enumerate(zip(source.shape_numpy, target.shape_numpy, reversed(source.spacing), reversed(target.spacing))):
        position = np.arange(n_out) * t / s
        keep = (position <= n_in - 1) & (np.abs(position % 1 - 0.5) > 1e-6)
        inside &= keep.reshape([-1 if a == axis else 1 for a in range(3)])
    assert inside.mean() > 0.6
    assert np.allclose(fast[inside], reference[inside], atol=1e-4)
    label = rng.integers(0, 3, size=source.shape_numpy).astype(np.uint8)
    fast = resample_label(label, source, target, "linear_onehot", 3)
    reference = resample_label(label, source, target, "linear_onehot", 3, method="simpleitk")
    assert np.mean(fast[inside] == reference[inside]) > 0.995  # differences only at exact ties of float sums


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 40, 300])
@pytest.mark.parametrize("ratio", [0.37, 1.0, 1.9])
def test_banded_kernel_equals_spline_and_linear_interpolation(n, ratio):
    """The banded kernel (prefilter folded in, small weights left out) against scipy's exact
    cubic B-spline interpolation (mirror boundary, as ITK) and numpy's linear interpolation,
    along the first, a middle and the last axis; the input is left untouched."""
    from scipy.ndimage import map_coordinates

    from pipeline.preprocessing.separable import resample_axis, source_positions

    rng = np.random.default_rng(n)
    signal = rng.normal(size=n) * 100
    n_out = max(1, round(n / ratio))
    positions = source_positions(n, n_out, ratio)
    cubic = map_coordinates(signal, [positions], order=3, mode="mirror")
    linear = np.interp(positions, np.arange(n), signal)
    for axis in range(3):
        shape = [2, 3, 4]
        shape[axis] = n
        array = np.broadcast_to(signal.reshape([-1 if a == axis else 1 for a in range(3)]), shape).astype(np.float32)
        before = array.copy()
        for order, expected in ((3, cubic), (1, linear)):
            result = resample_axis(array, axis, n_out, ratio, order)
            assert result.dtype == np.float32 and result.shape[axis] == n_out
            assert np.allclose(np.moveaxis(result, axis, 0), expected.reshape(-1, 1, 1), atol=1e-3), (axis, order)
        assert np.array_equal(array, before)
