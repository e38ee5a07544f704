"""Provenance and number formatting in the reports."""

from __future__ import annotations

from pathlib import Path

from pipeline.reporting.provenance import library_versions, stage_times
from pipeline.reporting.report import format_number, format_p_value


def test_stage_times_sum_benchmarks_of_nested_and_flat_rules(tmp_path: Path):
    for path, seconds in (
        ("demo_case/brain/a.tsv", 2.0),
        ("demo_case/brain/b.tsv", 3.0),
        ("plan.tsv", 1.5),
        ("train/x/fold_0.tsv", 10.0),
        ("train/other/fold_0.tsv", 99.0),
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(f"s\th:m:s\n{seconds}\t0:00:01\n")
    times = stage_times("x", tmp_path).set_index("stage")
    assert times.loc["demo_case", "jobs"] == 2 and times.loc["demo_case", "total_s"] == 5.0
    assert times.loc["plan", "max_s"] == 1.5
    assert times.loc["train", "total_s"] == 10.0  # another experiment's training is not counted


def test_versions_and_formats():
    assert {"python", "torch", "numpy", "snakemake"} <= set(library_versions())
    assert format_number(float("nan")) == "NaN" and format_number(0.12345) == "0.123" and format_number(3) == "3"
    assert format_p_value(0.0312) == "0.0312" and format_p_value(1e-5) == "1.00e-05" and format_p_value(float("nan")) == "n/a"
