"""Agreement with MONAI, SimpleITK and DeepMind's surface-distance where conventions match,
and differences that are exactly the documented convention where they do not."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.evaluation import Conventions, evaluate_case

torch = pytest.importorskip("torch")
monai_metrics = pytest.importorskip("monai.metrics")

CASES = [((24, 20, 14), (0.7, 1.3, 2.1), 4), ((40, 33), (0.9, 0.45), 3), ((16, 16, 16), (1.0, 1.0, 1.0), 3)]


def _one_hot(index: np.ndarray, k: int):
    """B C spatial float tensor, as MONAI's metrics expect."""
    return torch.from_numpy(np.stack([index == c for c in range(k)])[None].astype(np.float32))


def _monai(name: str, pred: np.ndarray, ref: np.ndarray, k: int, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty classes
        fn = getattr(monai_metrics, name)
        return fn(_one_hot(pred, k), _one_hot(ref, k), include_background=False, **kwargs).numpy()[0]


@pytest.mark.parametrize("shape, spacing, k", CASES)
def test_matches_monai_on_random_multiclass(shape, spacing, k, make_label_map, make_perturbed):
    ref = make_label_map(shape, k, seed=1)
    pred = make_perturbed(make_label_map(shape, k, seed=1, smooth=1.7), k, seed=2)
    labels = {c: f"class{c}" for c in range(k)}
    ours = evaluate_case(ref, pred, spacing, labels, Conventions(surface_tolerance_mm=1.5))
    assert ours["n_ref"].gt(0).all() and ours["n_pred"].gt(0).all()
    np.testing.assert_allclose(ours["dice"], _monai("compute_dice", pred, ref, k, ignore_empty=False), atol=1e-6)
    np.testing.assert_allclose(ours["iou"], _monai("compute_iou", pred, ref, k, ignore_empty=False), atol=1e-6)
    hd = _monai("compute_hausdorff_distance", pred, ref, k, spacing=spacing)
    hd95 = _monai("compute_hausdorff_distance", pred, ref, k, spacing=spacing, percentile=95)
    assd = _monai("compute_average_surface_distance", pred, ref, k, spacing=spacing, symmetric=True)
    nsd = _monai("compute_surface_dice", pred, ref, k, spacing=spacing, class_thresholds=[1.5] * (k - 1))
    np.testing.assert_allclose(ours["hd"], hd, atol=1e-4)
    np.testing.assert_allclose(ours["hd95"], hd95, atol=1e-4)
    np.testing.assert_allclose(ours["assd"], assd, atol=1e-4)
    np.testing.assert_allclose(ours["nsd"], nsd, atol=1e-6)
    metric = monai_metrics.DiceMetric(include_background=False, reduction="none", ignore_empty=False)
    metric(_one_hot(pred, k), _one_hot(ref, k))
    np.testing.assert_allclose(ours["dice"], metric.aggregate().numpy()[0], atol=1e-6)


def test_pooled_percentile_is_the_percentile_of_monai_distances(make_label_map, make_perturbed):
    """'pooled' differs from MONAI's hd95 only by pooling the same two directed distance sets."""
    from monai.metrics.utils import get_edge_surface_distance

    shape, spacing = (20, 18, 12), (0.8, 1.2, 2.0)
    ref = make_label_map(shape, 2, seed=5)
    pred = make_perturbed(ref, 2, seed=6, fraction=0.08)
    ours = evaluate_case(ref, pred, spacing, {1: "fg"}, Conventions(hd_percentile_method="pooled")).iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, (d_pred, d_ref), _ = get_edge_surface_distance(torch.from_numpy(pred == 1), torch.from_numpy(ref == 1), spacing=spacing, symmetric=True)
    pooled = np.percentile(np.concatenate([d_pred.numpy(), d_ref.numpy()]), 95)
    assert ours["hd95"] == pytest.approx(pooled, abs=1e-4)
    directed = max(np.percentile(d_pred.numpy(), 95), np.percentile(d_ref.numpy(), 95))
    assert evaluate_case(ref, pred, spacing, {1: "fg"}).iloc[0]["hd95"] == pytest.approx(directed, abs=1e-4)


def _empty_classes_pair() -> tuple[np.ndarray, np.ndarray]:
    """Class 1 in both, class 2 only in the reference (missed), class 3 only in the prediction,
    class 4 in neither."""
    ref = np.zeros((12, 10, 6), np.uint8)
    pred = np.zeros_like(ref)
    ref[2:6, 2:6, 1:4] = 1
    pred[3:7, 2:6, 1:4] = 1
    ref[8:11, 6:9, 2:5] = 2
    pred[1:3, 7:9, 4:6] = 3
    return ref, pred


def test_empty_classes_differ_from_monai_exactly_by_convention():
    ref, pred = _empty_classes_pair()
    spacing, k = (1.0, 1.5, 2.0), 5
    labels = {c: f"c{c}" for c in range(k)}
    worst = math.sqrt(sum((n * s) ** 2 for n, s in zip(ref.shape, spacing)))
    one = evaluate_case(ref, pred, spacing, labels).set_index("label")
    conv_nan = Conventions(empty_both="nan", empty_distance="nan")
    nan = evaluate_case(ref, pred, spacing, labels, conv_nan).set_index("label")
    dice_keep = _monai("compute_dice", pred, ref, k, ignore_empty=False)  # both empty -> 1, like "one"
    dice_ignore = _monai("compute_dice", pred, ref, k, ignore_empty=True)  # empty reference -> NaN
    np.testing.assert_allclose(one["dice"], dice_keep, atol=1e-6)
    np.testing.assert_allclose(nan["dice"][[1, 2, 4]], dice_ignore[[0, 1, 3]], atol=1e-6, equal_nan=True)
    # only difference to ignore_empty=True: a false-positive class (empty reference) is a 0, not NaN
    assert math.isnan(dice_ignore[2]) and nan.loc[3, "dice"] == 0.0
    hd = _monai("compute_hausdorff_distance", pred, ref, k, spacing=spacing)
    np.testing.assert_allclose(one.loc[1, "hd"], hd[0], atol=1e-4)
    assert np.isinf(hd[1]) and np.isinf(hd[2])  # MONAI: inf when one mask is empty
    assert one.loc[2, "hd"] == one.loc[3, "hd"] == pytest.approx(worst)
    assert math.isnan(nan.loc[2, "hd"]) and math.isnan(nan.loc[3, "hd"])
    assert math.isnan(hd[3]) and one.loc[4, "hd"] == 0.0 and math.isnan(nan.loc[4, "hd"])  # both empty


@pytest.mark.parametrize("shape, spacing, k", CASES)
def test_matches_simpleitk_label_overlap(shape, spacing, k, make_label_map, make_perturbed):
    ref = make_label_map(shape, k, seed=3)
    pred = make_perturbed(ref, k, seed=4, fraction=0.1)
    ours = evaluate_case(ref, pred, spacing, {c: f"c{c}" for c in range(k)}).set_index("label")
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.GetImageFromArray(pred), sitk.GetImageFromArray(ref))  # (source, target=reference)
    for c in range(1, k):
        assert ours.loc[c, "dice"] == pytest.approx(f.GetDiceCoefficient(c), abs=1e-9)
        assert ours.loc[c, "iou"] == pytest.approx(f.GetJaccardCoefficient(c), abs=1e-9)
        assert 1 - ours.loc[c, "recall"] == pytest.approx(f.GetFalseNegativeError(c), abs=1e-9)
        # ITK >= 5: false positive error = false positive *rate* |P \ R| / |not R|
        fpr = ours.loc[c, "fp"] / (ours.loc[c, "fp"] + ours.loc[c, "tn"])
        assert fpr == pytest.approx(f.GetFalsePositiveError(c), abs=1e-9)


def _box(shape, lo, hi) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # surface-distance uses scipy.ndimage.filters
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.2, 2.5)])
def test_matches_deepmind_surface_distance_on_boxes(spacing):
    """surface-distance puts surface points on voxel corners (surfels weighted by area) where we
    use voxel centres (counted once each). For boxes both give the same Hausdorff distance;
    Dice is identical; percentiles and NSD differ by that weighting."""
    sd = pytest.importorskip("surface_distance")
    shape = (24, 22, 14)
    ref = _box(shape, (4, 5, 3), (14, 15, 9))
    for pred in (_box(shape, (6, 6, 4), (16, 16, 10)), _box(shape, (3, 4, 2), (15, 16, 10))):
        conv = Conventions(surface_tolerance_mm=10.0)
        ours = evaluate_case(ref.astype(np.uint8), pred.astype(np.uint8), spacing, {1: "box"}, conv).iloc[0]
        dists = sd.compute_surface_distances(ref, pred, spacing)
        assert ours["hd"] == pytest.approx(sd.compute_robust_hausdorff(dists, 100), abs=1e-6)
        assert ours["dice"] == pytest.approx(sd.compute_dice_coefficient(ref, pred), abs=1e-12)
        assert ours["nsd"] == pytest.approx(1.0) and sd.compute_surface_dice_at_tolerance(dists, 10.0) == 1.0
