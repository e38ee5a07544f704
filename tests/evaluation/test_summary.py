"""summarize and nnunet_style_summary on hand-made per-case tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation import Conventions, evaluate_case, nnunet_style_summary, summarize
from pipeline.evaluation.summary import SUMMARY_METRICS, bootstrap_ci


def _cases(empty_both: str = "one") -> pd.DataFrame:
    """Three 2D cases, classes 1 and 2: case0 perfect, case1 misses class 2, case2 has neither class 2."""
    conv = Conventions(empty_both=empty_both)
    tables = []
    for i in range(3):
        ref = np.zeros((6, 6), np.uint8)
        ref[1:4, 1:4] = 1
        pred = ref.copy()
        if i == 0:
            ref[4:6, 4:6] = pred[4:6, 4:6] = 2
        if i == 1:
            ref[4:6, 4:6] = 2
            pred[1:4, 1] = 0
        tables.append(evaluate_case(ref, pred, (1, 1), {0: "bg", 1: "a", 2: "b"}, conv, case_id=f"case{i}"))
    return pd.concat(tables, ignore_index=True)


def test_summary_rows_counts_and_statistics():
    per_case = _cases()
    summary = summarize(per_case, n_boot=200, seed=1).set_index("class")
    assert summary.index.tolist() == ["a", "b", "mean_foreground"]
    assert summary.loc["b", "n_missed"] == 1 and summary.loc["b", "n_empty_both"] == 1
    assert summary.loc["mean_foreground", "n_missed"] == 1 and summary.loc["mean_foreground", "label"] == -1
    assert (summary["n_cases"] == 3).all()
    dice_a = per_case.loc[per_case["class"] == "a", "dice"].to_numpy()
    assert summary.loc["a", "dice_mean"] == pytest.approx(dice_a.mean())
    assert summary.loc["a", "dice_std"] == pytest.approx(dice_a.std(ddof=1))
    assert summary.loc["a", "dice_median"] == pytest.approx(np.median(dice_a))
    assert summary.loc["b", "dice_mean"] == pytest.approx((1 + 0 + 1) / 3)  # empty_both = "one"
    assert summary.loc["a", "dice_ci_low"] <= summary.loc["a", "dice_mean"] <= summary.loc["a", "dice_ci_high"]
    per_case_fg = per_case.groupby("case")["dice"].mean()
    assert summary.loc["mean_foreground", "dice_mean"] == pytest.approx(per_case_fg.mean())
    for metric in SUMMARY_METRICS:
        assert f"{metric}_n_valid" in summary.columns and f"{metric}_ci_high" in summary.columns


def test_nan_values_are_counted_not_hidden():
    summary = summarize(_cases(empty_both="nan"), n_boot=50).set_index("class")
    assert summary.loc["b", "dice_n_nan"] == 1 and summary.loc["b", "dice_n_valid"] == 2
    assert summary.loc["b", "dice_mean"] == pytest.approx(0.5)
    assert summary.loc["b", "hd_n_nan"] == 1  # both empty -> NaN distance under empty_both="nan"


def test_bootstrap_is_seeded_and_sane():
    values = np.array([0.1, 0.5, 0.9, 0.7])
    assert bootstrap_ci(values, 500, 3) == bootstrap_ci(values, 500, 3)
    low, high = bootstrap_ci(values, 500, 3)
    assert values.min() <= low <= values.mean() <= high <= values.max()
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([]), 100, 0))
    assert all(math.isnan(v) for v in bootstrap_ci(values, 0, 0))
    assert bootstrap_ci(np.array([0.3]), 100, 0) == pytest.approx((0.3, 0.3))


def test_nnunet_style_summary_sets_both_empty_to_nan():
    per_case = _cases(empty_both="one")  # our table says 1.0 for the empty class b of case2
    nn = nnunet_style_summary(per_case).set_index("class")
    assert nn.loc["b", "Dice"] == pytest.approx(0.5)  # nanmean(1, 0, NaN)
    assert nn.loc["b", "n_nan"] == 1
    assert nn.loc["foreground_mean", "Dice"] == pytest.approx((nn.loc["a", "Dice"] + 0.5) / 2)
    assert nn.loc["a", "IoU"] == pytest.approx(per_case.loc[per_case["class"] == "a", "iou"].mean())


def test_summarize_rejects_foreign_tables():
    with pytest.raises(ValueError, match="lacks columns"):
        summarize(pd.DataFrame({"case": ["x"], "dice": [1.0]}))
