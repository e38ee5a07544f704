"""Landmark tables (clear errors on bad input) and radial-error statistics on hand-made numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import validate_config
from pipeline.errors import ConfigError
from pipeline.tasks.landmarks.evaluate import error_statistics, radial_errors, summarize_errors
from pipeline.tasks.landmarks.table import LandmarkError, case_points, landmark_names, read_landmarks


def write(path: Path, text: str) -> Path:
    path.write_text(text.replace("|", "\t"))
    return path


def test_reads_table_in_declared_order(tmp_path: Path) -> None:
    table = read_landmarks(write(tmp_path / "l.tsv", "case|landmark|x|y|z\na|PC|1|2|3\na|AC|4|5|6\n"), 3)
    assert landmark_names(table) == ["PC", "AC"]
    np.testing.assert_array_equal(case_points(table, "a", ["AC", "PC"]), [[4, 5, 6], [1, 2, 3]])


def test_unknown_landmark_name_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "l.tsv", "case|landmark|x|y|z\na|AC|1|2|3\na|XX|4|5|6\n")
    with pytest.raises(LandmarkError, match=r"line 3: unknown landmark 'XX' \(case 'a'\); declared landmarks are \['AC'\]"):
        read_landmarks(path, 3, ["AC"])


def test_missing_landmark_of_a_case_is_an_error(tmp_path: Path) -> None:
    table = read_landmarks(write(tmp_path / "l.tsv", "case|landmark|x|y|z\na|AC|1|2|3\na|PC|4|5|6\nb|AC|1|2|3\n"), 3)
    with pytest.raises(LandmarkError, match=r"lacks landmark\(s\) \['PC'\] of case 'b'"):
        case_points(table, "b", ["AC", "PC"])
    with pytest.raises(LandmarkError, match="no landmarks for case 'c'"):
        case_points(table, "c", ["AC"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case|landmark|x|y\na|AC|1|2\n", r"lacks column\(s\) \['z'\]"),
        ("case|landmark|x|y|z\na|AC|1|oops|3\n", r"line 2: y='oops' of case 'a', landmark 'AC' is not a finite number"),
        ("case|landmark|x|y|z\na|AC|1|2|3\na|AC|1|2|3\n", "lists landmark 'AC' of case 'a' more than once"),
    ],
)
def test_malformed_tables(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LandmarkError, match=message):
        read_landmarks(write(tmp_path / "l.tsv", text), 3)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LandmarkError, match="does not exist"):
        read_landmarks(tmp_path / "none.tsv", 3)


def test_radial_errors_and_summary() -> None:
    truth = pd.DataFrame({"case": ["a", "a", "b", "b"], "landmark": ["P", "Q"] * 2, "x": 0.0, "y": 0.0, "z": 0.0})
    predicted = truth.copy()
    predicted["x"] = [3.0, 0.0, 1.0, 0.0]
    predicted["y"] = [4.0, 2.0, 0.0, 0.0]  # errors: a/P 5, a/Q 2, b/P 1, b/Q 0
    per_case = radial_errors(predicted, truth, ["P", "Q"])
    np.testing.assert_allclose(per_case["radial_error_mm"], [5, 2, 1, 0])
    assert list(per_case.columns[:5]) == ["case", "landmark", "x_true", "y_true", "z_true"]
    summary = summarize_errors(per_case).set_index("landmark")
    assert list(summary.index) == ["P", "Q", "all"]
    assert summary.loc["all", "mean"] == pytest.approx(2.0)
    assert summary.loc["all", "median"] == pytest.approx(1.5)
    assert summary.loc["all", "sdr_2mm"] == pytest.approx(75.0)
    assert summary.loc["P", "sdr_4mm"] == pytest.approx(50.0)
    assert summary.loc["all", "p95"] == pytest.approx(np.percentile([5, 2, 1, 0], 95))


def test_error_statistics_of_nothing_are_nan() -> None:
    stats = error_statistics(np.array([]))
    assert stats["n"] == 0 and np.isnan(stats["median"]) and np.isnan(stats["sdr_2.5mm"])


def test_config_checks() -> None:
    base = {"dataset": {"labels": {0: "bg", 1: "fg"}, "manifest": "m.tsv"}}
    with pytest.raises(ConfigError, match="task landmarks needs dataset.landmarks"):
        validate_config({**base, "experiments": {"lm": {"task": "landmarks"}}})
    with pytest.raises(ConfigError, match=r"init_from: 'nope' is not another experiment"):
        validate_config({**base, "experiments": {"seg": {"init_from": "nope"}}})
    with pytest.raises(ConfigError, match="is a cycle"):
        validate_config({**base, "experiments": {"a": {"init_from": "b"}, "b": {"init_from": "a"}}})
    config = validate_config({**base, "experiments": {"dae": {"task": "denoise"}, "seg": {"init_from": "dae", "init_part": "all"}}})
    assert config["experiments"]["seg"]["task"] == "segmentation" and config["experiments"]["dae"]["denoise"]["loss"] == "l1"


def test_flags_are_carried_counted_and_reported(tmp_path: Path) -> None:
    from pipeline.tasks.landmarks.report import flagged_rows, flagged_section, per_landmark_comparison, write_landmark_comparison

    truth = pd.DataFrame({"case": ["a", "a", "b", "b"], "landmark": ["P", "Q"] * 2, "x": 0.0, "y": 0.0, "z": 0.0})
    predicted = truth.assign(x=[30.0, 1.0, 0.5, 0.0], confidence=[0.05, 0.9, 0.8, 0.7], flagged=[True, False, False, False])
    per_case = radial_errors(predicted, truth, ["P", "Q"])
    assert per_case["flagged"].tolist() == [True, False, False, False] and per_case["confidence"].iloc[0] == pytest.approx(0.05)
    per_case.to_csv(tmp_path / "per_case.tsv", sep="\t", index=False)  # read back as the report reads it
    per_case = pd.read_csv(tmp_path / "per_case.tsv", sep="\t", dtype={"case": str})
    summary = summarize_errors(per_case)
    assert summary.set_index("landmark")["flagged"].to_dict() == {"P": 1, "Q": 0, "all": 1}
    # the jump of P is in its mean and max, not hidden by a good median
    assert summary.set_index("landmark").loc["P", ["median", "mean", "max", "sdr_2mm"]].tolist() == pytest.approx([15.25, 15.25, 30.0, 50.0])
    assert flagged_rows(per_case)[["case", "landmark"]].values.tolist() == [["a", "P"]]
    assert flagged_section(per_case, 0.2).text.startswith("1 of 4 predicted landmarks were flagged (confidence below min_confidence = 0.2)")
    assert flagged_section(per_case.assign(flagged=False), 0.2).text.startswith("No predicted landmark was flagged")
    table = per_landmark_comparison({"heatmap": summary, "regression": summary.assign(median=summary["median"] + 1)})
    assert table[["landmark", "experiment"]].values.tolist()[:4] == [["P", "heatmap"], ["P", "regression"], ["Q", "heatmap"], ["Q", "regression"]]
    assert {"median", "mean", "max", "sdr_2mm", "flagged"} <= set(table.columns)
    write_landmark_comparison(table, "demo", tmp_path / "c.html", table)
    assert "Per landmark" in (tmp_path / "c.html").read_text()


def test_predictions_without_confidence_are_summarised_unflagged() -> None:
    truth = pd.DataFrame({"case": ["a"], "landmark": ["P"], "x": 0.0, "y": 0.0, "z": 0.0})
    summary = summarize_errors(radial_errors(truth.assign(x=1.0), truth, ["P"]))
    assert summary["flagged"].tolist() == [0, 0]
