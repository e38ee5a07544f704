"""Every task's report names the test cases that are not in its tables, and why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.reporting.results import ExperimentResults
from tests.reporting.html_check import parse_strict

UNSCORED = {"case<7>": "failed its check: label.nii.gz has 3 dimensions, expected 2", "c9": "no reference label"}


def landmark_results() -> ExperimentResults:
    from pipeline.tasks.landmarks.evaluate import radial_errors, summarize_errors

    truth = pd.DataFrame({"case": ["a", "a"], "landmark": ["P", "Q"], "x": 0.0, "y": 0.0, "z": 0.0})
    per_case = radial_errors(truth.assign(x=[1.0, 2.0]), truth, ["P", "Q"])
    config = {"dataset": {"name": "d"}, "experiments": {"lm": {"landmarks": {"method": "heatmap", "min_confidence": 0.2}}}}
    return ExperimentResults("lm", config, per_case, summarize_errors(per_case), unscored=UNSCORED)


def denoise_results() -> ExperimentResults:
    per_case = pd.DataFrame({"case": ["a"], "psnr_noisy": [20.0], "psnr_denoised": [30.0]})
    config = {"dataset": {"name": "d"}, "experiments": {"dae": {"denoise": {"loss": "l1"}}}}
    return ExperimentResults("dae", config, per_case, per_case.drop(columns="case"), unscored=UNSCORED)


@pytest.mark.parametrize("task", ["landmarks", "denoise"])
def test_report_names_the_unscored_cases(task: str, tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    if task == "landmarks":
        from pipeline.tasks.landmarks.report import write_landmark_report

        write_landmark_report(landmark_results(), {}, output)
    else:
        from pipeline.tasks.denoise.evaluate import write_denoise_report

        write_denoise_report(denoise_results(), None, output)
    html = output.read_text(encoding="utf-8")
    parse_strict(html)
    assert "Test cases not scored" in html
    assert "test case case&lt;7&gt; is not scored: failed its check: label.nii.gz has 3 dimensions, expected 2" in html
    assert "test case c9 is not scored: no reference label" in html


def test_report_without_unscored_cases_has_no_such_section(tmp_path: Path) -> None:
    from pipeline.tasks.landmarks.report import write_landmark_report

    results = landmark_results()
    write_landmark_report(ExperimentResults(results.experiment, results.config, results.per_case, results.summary), {}, tmp_path / "r.html")
    assert "Test cases not scored" not in (tmp_path / "r.html").read_text(encoding="utf-8")
