"""A class no test reference holds is not evaluable: not a perfect score, not in the foreground mean.

Reference and prediction files are written as NIfTI and evaluated with ``evaluate_paths``
(the files-to-tables path of the workflow's evaluation); the summary read back from its TSV
feeds the experiment report.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation import Conventions, evaluate_paths
from pipeline.evaluation.summary import MEAN_FOREGROUND, SCORE_METRICS
from tests.conftest import write_volume
from tests.reporting.html_check import parse_strict, table_rows

LABELS = {0: "background", 1: "organ", 2: "lesion"}


def _write_cases(root: Path, lesion_predicted_in: int | None = None, empty: bool = False) -> tuple[Path, Path]:
    """Three cases: the organ predicted with poor overlap, the lesion in no reference."""
    for i in range(3):
        ref = np.zeros((8, 12, 12), np.uint8)
        pred = np.zeros_like(ref)
        if not empty:
            ref[2:6, 2:8, 2:8] = 1
            pred[2:6, 6 - i : 12 - i, 6:12] = 1  # overlaps the organ a little
        if i == lesion_predicted_in:
            pred[0, 0:2, 0:2] = 2
        write_volume(root / "ref" / f"case{i}.nii.gz", ref)
        write_volume(root / "pred" / f"case{i}.nii.gz", pred)
    return root / "ref", root / "pred"


def test_a_class_absent_from_every_reference_is_not_evaluable(tmp_path):
    ref, pred = _write_cases(tmp_path)
    per_case, summary = evaluate_paths(ref, pred, tmp_path / "eval.tsv", labels=LABELS, conventions=Conventions(empty_both="one"))
    assert (per_case.loc[per_case["class"] == "lesion", "dice"] == 1.0).all()  # the per-case convention stays
    rows = summary.set_index("class")
    lesion, organ, fg = rows.loc["lesion"], rows.loc["organ"], rows.loc[MEAN_FOREGROUND]
    assert not lesion["evaluable"] and lesion["n_reference"] == 0 and lesion["n_cases"] == 3
    for metric in SCORE_METRICS:
        assert math.isnan(lesion[f"{metric}_mean"]) and lesion[f"{metric}_n_valid"] == 0
    assert "not evaluable" in lesion["note"] and "absent from every test reference (3 case(s))" in lesion["note"]
    assert organ["evaluable"] and organ["n_reference"] == 3 and organ["note"] == ""
    organ_dice = per_case.loc[per_case["class"] == "organ", "dice"].mean()
    assert organ_dice < 0.5
    assert fg["dice_mean"] == pytest.approx(organ_dice)  # not (organ + 1.0) / 2
    assert fg["evaluable"] and "leaves out the not evaluable class(es) ['lesion']" in fg["note"]
    back = pd.read_csv(tmp_path / "eval_summary.tsv", sep="\t").set_index("class")
    assert not back.loc["lesion", "evaluable"] and math.isnan(back.loc["lesion", "dice_mean"])


def test_false_positives_of_an_absent_class_are_counted_but_not_scored(tmp_path):
    ref, pred = _write_cases(tmp_path, lesion_predicted_in=1)
    _, summary = evaluate_paths(ref, pred, tmp_path / "eval.tsv", labels=LABELS)
    lesion = summary.set_index("class").loc["lesion"]
    assert not lesion["evaluable"] and lesion["n_false_positive"] == 1
    assert math.isnan(lesion["dice_mean"]) and lesion["volume_pred_ml_mean"] > 0


def test_references_all_background_leave_nothing_to_score(tmp_path):
    ref, pred = _write_cases(tmp_path, empty=True)
    _, summary = evaluate_paths(ref, pred, tmp_path / "eval.tsv", labels=LABELS)
    rows = summary.set_index("class")
    assert not rows["evaluable"].any()
    assert math.isnan(rows.loc[MEAN_FOREGROUND, "dice_mean"]) and rows.loc[MEAN_FOREGROUND, "n_reference"] == 0
    assert "every test reference is all background" in rows.loc[MEAN_FOREGROUND, "note"]


def test_report_shows_a_warning_for_the_class_it_could_not_evaluate(tmp_path):
    from pipeline.reporting.report import write_experiment_report
    from pipeline.reporting.results import ExperimentResults

    ref, pred = _write_cases(tmp_path)
    per_case, _ = evaluate_paths(ref, pred, tmp_path / "eval.tsv", labels=LABELS)
    summary = pd.read_csv(tmp_path / "eval_summary.tsv", sep="\t")  # as the report stage reads it
    config = {"dataset": {"name": "absent class"}, "experiments": {"unet": {}}, "report": {"worst_cases": 1}}
    output = tmp_path / "unet.html"
    write_experiment_report(ExperimentResults("unet", config, per_case, summary), {"patch_size": [8, 8, 8]}, Conventions(), output)
    html = output.read_text(encoding="utf-8")
    parse_strict(html)
    assert 'id="warnings"' in html and "lesion: not evaluable: class &#39;lesion&#39; is absent from every test reference" in html
    headline = {row[0]: row for row in table_rows(html, "headline")}
    assert set(headline) == {"organ", "lesion (not evaluable)", MEAN_FOREGROUND}
    assert headline["lesion (not evaluable)"][1].startswith("NaN")
    assert headline[MEAN_FOREGROUND][1] == headline["organ"][1]  # the foreground mean is the organ's alone
    assert "<td></td></tr>" in html and "<td>NaN</td></tr>" not in html  # the empty notes (last column) read back blank
