"""reports/index.html: experiments side by side, paired Wilcoxon tests, ranking, links."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from pipeline.reporting import compare
from tests.reporting.conftest import CASE_IDS, LABELS, ReportInputs, make_inputs
from tests.reporting.html_check import parse_strict, table_rows


@pytest.fixture(scope="module")
def second_experiment(tmp_path_factory: pytest.TempPathFactory) -> ReportInputs:
    """The same four cases predicted with other errors (each case gets the next one's)."""
    return make_inputs(tmp_path_factory.mktemp("second"), shift=1)


@pytest.fixture(scope="module")
def index_page(report_inputs: ReportInputs, second_experiment: ReportInputs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    output = tmp_path_factory.mktemp("index") / "reports" / "index.html"
    tests = compare.write_comparison(
        "synthetic", {"unet": report_inputs.per_case, "deeplab": second_experiment.per_case},
        {"unet": report_inputs.summary, "deeplab": second_experiment.summary}, output,
    )  # fmt: skip
    return output, tests


def test_paired_test_matches_scipy_on_shared_cases():
    a = pd.Series([0.9, 0.8, 0.7, 0.6, np.nan], index=["p", "q", "r", "s", "t"])
    b = pd.Series([0.5, 0.85, 0.4, 0.1, 0.3, 0.2], index=["p", "q", "r", "s", "t", "u"])
    result = compare.paired_test(a, b)
    expected = stats.wilcoxon([0.4, -0.05, 0.3, 0.5])
    assert result["n"] == 4
    assert result["p"] == pytest.approx(expected.pvalue) and result["statistic"] == pytest.approx(expected.statistic)
    assert result["mean_diff"] == pytest.approx(0.2875)


def test_paired_test_without_differences_or_pairs_gives_nan_with_a_note():
    same = pd.Series([0.5, 0.6], index=["a", "b"])
    assert math.isnan(compare.paired_test(same, same)["p"])
    assert compare.paired_test(same, same)["note"] == "identical on every case"
    assert compare.paired_test(same, pd.Series([0.1], index=["z"]))["n"] == 0


def test_holm_adjustment():
    assert compare.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(compare.holm([0.01, float("nan")])[1])


def test_pairwise_tests_cover_every_class_and_pair(index_page, report_inputs: ReportInputs, second_experiment: ReportInputs):
    _, tests = index_page
    assert list(tests["class"]) == ["liver", "tu<mour>&", "mean_foreground"]
    assert set(zip(tests["a"], tests["b"])) == {("unet", "deeplab")}
    liver = tests.iloc[0]
    a = report_inputs.per_case[report_inputs.per_case["class"] == "liver"].set_index("case")["dice"]
    b = second_experiment.per_case[second_experiment.per_case["class"] == "liver"].set_index("case")["dice"]
    assert liver["n"] == len(CASE_IDS)
    assert liver["p"] == pytest.approx(stats.wilcoxon(a - b.loc[a.index]).pvalue)


def test_ranking_orders_by_mean_foreground_dice(report_inputs: ReportInputs, second_experiment: ReportInputs):
    worse = report_inputs.summary.copy()
    worse.loc[worse["class"] == "mean_foreground", "dice_mean"] = 0.1
    rows = compare.ranking({"worse": worse, "better": second_experiment.summary})
    assert [(r["rank"], r["experiment"]) for r in rows] == [(1, "better"), (2, "worse")]
    assert rows[0]["link"] == "better.html"


def test_index_is_well_formed_with_every_experiment_class_and_link(index_page):
    output, _ = index_page
    page = output.read_text(encoding="utf-8")
    parsed = parse_strict(page)
    text = "".join(parsed.text)
    for name in ["unet", "deeplab", *list(LABELS.values())[1:], "mean_foreground"]:
        assert name in text
    assert "<mour>" not in page
    links = {attrs["href"] for tag, attrs in parsed.elements if tag == "a"}
    assert links == {"unet.html", "deeplab.html"}
    assert len(table_rows(page, "tests")) == 3
    assert [r[1] for r in table_rows(page, "ranking")] in (["unet", "deeplab"], ["deeplab", "unet"])
    for metric in ("dice", "iou", "hd95"):
        assert len(table_rows(page, f"side-{metric}")) == 3
    sources = [attrs.get("src") for tag, attrs in parsed.elements if tag in ("img", "script")]
    assert all(s is None or s.startswith("data:image/png;base64,") for s in sources)


def test_compare_cli(report_inputs: ReportInputs, second_experiment: ReportInputs, tmp_path: Path):
    from pipeline.__main__ import main

    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("case\timage\tlabel\tsplit\nunused\ta.nii.gz\tb.nii.gz\ttest\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"name": "cli", "manifest": str(manifest), "channels": [{"name": "image", "modality": "ct"}], "labels": {0: "background", 1: "liver", 2: "tumour"}},
        "experiments": {"a": {}, "b": {}},
    }))  # fmt: skip
    paths = []
    for name, inputs in (("a", report_inputs), ("b", second_experiment)):
        (tmp_path / name).mkdir()
        inputs.per_case.to_csv(tmp_path / name / "per_case.tsv", sep="\t", index=False)
        inputs.summary.to_csv(tmp_path / name / "summary.tsv", sep="\t", index=False)
        paths.append(tmp_path / name)
    output = tmp_path / "index.html"
    args = ["compare", "--config", str(config), "--experiments", "a", "b", "--per-case", *[str(p / "per_case.tsv") for p in paths], "--output", str(output)]
    assert main([*args, "--summaries", *[str(p / "summary.tsv") for p in paths]]) == 0
    parse_strict(output.read_text(encoding="utf-8"))
    assert main([*args, "--summaries", str(paths[0] / "summary.tsv")]) == 1  # one summary for two experiments
