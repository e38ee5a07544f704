"""evaluate_case: hand-computed values on tiny masks, empty-mask conventions and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation import CASE_COLUMNS, Conventions, evaluate_case

LABELS = {0: "background", 1: "organ"}


def _square_pair() -> tuple[np.ndarray, np.ndarray]:
    """5x5: reference 3x3 square, prediction its left 3x2 part.

    Reference boundary: the 8 non-centre voxels; prediction boundary: all 6 voxels.
    pred->ref: only the reference centre (2, 2) is off the reference boundary: one step along axis 1.
    ref->pred: the three voxels of column 3 are one step (axis 1) from the prediction.
    """
    ref = np.zeros((5, 5), np.uint8)
    ref[1:4, 1:4] = 1
    pred = np.zeros_like(ref)
    pred[1:4, 1:3] = 1
    return ref, pred


def test_hand_computed_2d_anisotropic():
    ref, pred = _square_pair()
    row = evaluate_case(ref, pred, (2.0, 0.5), LABELS, case_id="sq").iloc[0]
    assert list(evaluate_case(ref, pred, (2.0, 0.5), LABELS).columns) == CASE_COLUMNS
    assert (row["case"], row["label"], row["class"]) == ("sq", 1, "organ")
    assert row["dice"] == pytest.approx(2 * 6 / 15)
    assert row["iou"] == pytest.approx(6 / 9)
    assert row["precision"] == pytest.approx(1.0)
    assert row["recall"] == pytest.approx(6 / 9)
    assert row["accuracy"] == pytest.approx(22 / 25)
    # one step along axis 1 is 0.5 mm (axis 0 would be 2 mm): pred->ref [0]*5+[0.5], ref->pred [0]*5+[0.5]*3
    assert row["hd"] == pytest.approx(0.5)
    assert row["assd"] == pytest.approx(4 * 0.5 / 14)
    assert row["hd95"] == pytest.approx(0.5)  # max(0.75 * 0.5, 0.5)
    assert row["volume_ref_ml"] == pytest.approx(9 * 1.0 / 1000)
    assert row["volume_diff_ml"] == pytest.approx(-3 / 1000)
    assert (row["n_ref"], row["n_pred"], row["tp"], row["fp"], row["fn"], row["tn"]) == (9, 6, 6, 0, 3, 16)
    assert not (row["missed"] or row["false_positive_empty"] or row["empty_ref"] or row["empty_pred"])


def test_hand_computed_percentile_methods_and_nsd():
    ref, pred = _square_pair()
    # 70th percentile: pred->ref [0,0,0,0,0,1] -> 0; ref->pred [0]*5+[1]*3 -> 0.9; pooled 10x0+4x1 -> 0.1
    directed = evaluate_case(ref, pred, (1, 1), LABELS, Conventions(hd_percentile=70)).iloc[0]
    pooled = evaluate_case(ref, pred, (1, 1), LABELS, Conventions(hd_percentile=70, hd_percentile_method="pooled"))
    assert directed["hd95"] == pytest.approx(0.9)
    assert pooled.iloc[0]["hd95"] == pytest.approx(0.1)
    nsd = lambda tol: evaluate_case(ref, pred, (1, 1), LABELS, Conventions(surface_tolerance_mm=tol)).iloc[0]["nsd"]  # noqa: E731
    assert nsd(0.9) == pytest.approx(10 / 14)
    assert nsd(1.0) == pytest.approx(1.0)  # the tolerance is inclusive


def test_hand_computed_3d_anisotropic():
    """3x3x3 cube vs its first two slabs along axis 0 (spacing 3, 1, 2 mm).

    pred boundary = all 18 voxels, ref boundary = 26 voxels (all but the centre).
    pred->ref: only the ref centre is off the ref boundary, 1 mm (axis 1) away: 17x0 + 1.
    ref->pred: the 9 voxels of slab 3 are 3 mm (axis 0) from slab 2: 17x0 + 9x3.
    """
    ref = np.zeros((5, 5, 5), np.int16)
    ref[1:4, 1:4, 1:4] = 1
    pred = ref.copy()
    pred[3] = 0
    row = evaluate_case(ref, pred, (3.0, 1.0, 2.0), LABELS).iloc[0]
    assert row["dice"] == pytest.approx(36 / 45)
    assert row["hd"] == pytest.approx(3.0)
    assert row["assd"] == pytest.approx((1 + 27) / 44)
    assert row["hd95"] == pytest.approx(max(np.percentile([0] * 17 + [1], 95), np.percentile([0] * 17 + [3] * 9, 95)))
    assert row["volume_ref_ml"] == pytest.approx(27 * 6 / 1000)
    assert row["volume_pred_ml"] == pytest.approx(18 * 6 / 1000)
    assert row["nsd"] == pytest.approx((18 + 17) / 44)


def test_identical_masks_and_noncontiguous_labels():
    ref = np.zeros((6, 7), np.int32)
    ref[1:3, 1:4] = 2
    ref[4:6, 2:6] = 5
    table = evaluate_case(ref, ref.copy(), (1, 1), {0: "bg", 2: "x", 5: "y"})
    assert table["label"].tolist() == [2, 5] and table["class"].tolist() == ["x", "y"]
    assert np.allclose(table[["dice", "iou", "precision", "recall", "accuracy", "nsd"]], 1.0)
    assert np.allclose(table[["hd", "hd95", "assd", "volume_diff_ml"]], 0.0)


def _empty_pair(case: str) -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((5, 5), np.uint8)
    pred = np.zeros((5, 5), np.uint8)
    if case in ("pred_empty", "none_empty"):
        ref[1:3, 1:3] = 1
    if case in ("ref_empty", "none_empty"):
        pred[2:4, 2:4] = 1
    return ref, pred


WORST_2D = math.sqrt((5 * 2.0) ** 2 + (5 * 0.5) ** 2)  # field-of-view diagonal of 5x5 at (2, 0.5) mm


@pytest.mark.parametrize("empty_both", ["one", "nan"])
@pytest.mark.parametrize("empty_distance", ["worst", "nan"])
@pytest.mark.parametrize("case", ["both_empty", "ref_empty", "pred_empty"])
def test_empty_masks_each_convention(case, empty_both, empty_distance):
    ref, pred = _empty_pair(case)
    conv = Conventions(empty_both=empty_both, empty_distance=empty_distance)
    row = evaluate_case(ref, pred, (2.0, 0.5), LABELS, conv).iloc[0]
    dist = ["hd", "hd95", "assd"]
    if case == "both_empty":
        expected = 1.0 if empty_both == "one" else math.nan
        for m in ["dice", "iou", "precision", "recall"]:
            assert row[m] == pytest.approx(expected, nan_ok=True), m
        for m in dist:
            assert row[m] == pytest.approx(0.0 if empty_both == "one" else math.nan, nan_ok=True), m
        assert row["nsd"] == pytest.approx(expected, nan_ok=True)
        assert row["empty_ref"] and row["empty_pred"] and not row["missed"] and not row["false_positive_empty"]
    else:
        for m in ["dice", "iou", "precision", "recall", "nsd"]:
            assert row[m] == 0.0, m  # a failure, never NaN, whatever empty_both says
        for m in dist:
            assert row[m] == pytest.approx(WORST_2D if empty_distance == "worst" else math.nan, nan_ok=True), m
        assert row["missed"] == (case == "pred_empty")
        assert row["false_positive_empty"] == (case == "ref_empty")
    assert row["accuracy"] == pytest.approx((row["tp"] + row["tn"]) / 25)


def test_input_errors_name_the_problem():
    ref = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"case 'c1'.*\(4, 4\).*\(4, 5\)"):
        evaluate_case(ref, np.zeros((4, 5), np.uint8), (1, 1), LABELS, case_id="c1")
    with pytest.raises(ValueError, match="spacing"):
        evaluate_case(ref, ref, (1, 1, 1), LABELS)
    with pytest.raises(ValueError, match="spacing"):
        evaluate_case(ref, ref, (1, 0), LABELS)
    with pytest.raises(ValueError, match="2D or 3D"):
        evaluate_case(np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)), (1, 1, 1, 1), LABELS)
    bad = ref.copy()
    bad[0, 0] = 7
    with pytest.raises(ValueError, match=r"case 'c2'.*prediction.*value 7"):
        evaluate_case(ref, bad, (1, 1), LABELS, case_id="c2")
    gap = ref.copy()
    gap[0, 0] = 2  # inside [0, 3] but not a label
    with pytest.raises(ValueError, match=r"reference.*\[2\]"):
        evaluate_case(gap, ref, (1, 1), {0: "bg", 1: "a", 3: "c"}, case_id="c3")
    with pytest.raises(ValueError, match="value -1"):
        evaluate_case(ref.astype(np.int8) - 1, ref, (1, 1), LABELS)
    with pytest.raises(ValueError, match="non-integer value 0.5"):
        evaluate_case(ref + 0.5, ref, (1, 1), LABELS)
    with pytest.raises(ValueError, match="label values must be integers"):
        evaluate_case(ref, ref, (1, 1), {"1": "a"})
    with pytest.raises(ValueError, match="unique"):
        evaluate_case(ref, ref, (1, 1), {1: "a", 2: "a"})


def test_accepts_bool_float_and_huge_label_values():
    ref, pred = _square_pair()
    base = evaluate_case(ref, pred, (1, 1), LABELS)
    assert evaluate_case(ref.astype(bool), pred.astype(np.float32), (1, 1), LABELS).equals(base)
    big = 3_000_000
    huge = evaluate_case(ref.astype(np.int64) * big, pred.astype(np.int64) * big, (1, 1), {big: "organ"})
    assert huge["label"].tolist() == [big]
    assert np.allclose(huge[["dice", "hd", "assd"]].to_numpy(float), base[["dice", "hd", "assd"]].to_numpy(float))


def test_any_axis_order_with_matching_spacing(make_label_map, make_perturbed):
    """Transposing the arrays (non-contiguous views) with the spacing permuted alike changes nothing."""
    ref = make_label_map((14, 11, 9), 3, seed=7)
    pred = make_perturbed(ref, 3, seed=8)
    labels = {0: "bg", 1: "a", 2: "b"}
    base = evaluate_case(ref, pred, (0.6, 1.1, 2.4), labels)
    moved = evaluate_case(ref.transpose(2, 0, 1), pred.transpose(2, 0, 1), (2.4, 0.6, 1.1), labels)
    cols = ["dice", "hd", "hd95", "assd", "nsd", "volume_ref_ml"]
    np.testing.assert_allclose(moved[cols].to_numpy(float), base[cols].to_numpy(float), rtol=1e-12)
