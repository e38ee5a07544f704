"""The experiment report: well-formed, complete, escaped, offline; the worst-case gallery."""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.reporting import overlays
from tests.reporting.conftest import CASE_IDS, LABELS, ReportInputs
from tests.reporting.html_check import parse_strict, table_rows

EVIL = CASE_IDS[2]


def test_report_is_well_formed_and_holds_every_case_and_class(experiment_report: Path, report_inputs: ReportInputs):
    page = experiment_report.read_text(encoding="utf-8")
    parsed = parse_strict(page)
    text = "".join(parsed.text)
    for case in CASE_IDS:
        assert case in text
    for name in list(LABELS.values())[1:] + ["mean_foreground"]:
        assert name in text
    rows = table_rows(page, "cases")
    assert len(rows) == len(report_inputs.per_case)
    assert {r[0] for r in rows} == set(CASE_IDS)
    assert [r[4] for r in table_rows(page, "headline")] == ["4"] * 3  # cases per class, and the foreground mean


def test_cases_are_listed_worst_first(experiment_report: Path):
    rows = table_rows(experiment_report.read_text(encoding="utf-8"), "cases")
    means = [float(r[1]) for r in rows]
    assert means == sorted(means)
    assert rows[0][0] == EVIL  # its second class was missed


def test_special_characters_are_escaped(experiment_report: Path):
    page = experiment_report.read_text(encoding="utf-8")
    parsed = parse_strict(page)
    assert "<script>alert" not in page and "<mour>" not in page and "<b>blobs" not in page
    assert html_lib.escape(EVIL) in page or "c&lt;script&gt;alert(&#34;x&#34;)" in page
    scripts = [attrs for tag, attrs in parsed.elements if tag == "script"]
    assert len(scripts) == 1  # the report's own table script, nothing injected
    assert "synthetic <b>blobs</b>" in "".join(parsed.text)  # shown as text


def test_report_is_self_contained(experiment_report: Path):
    parsed = parse_strict(experiment_report.read_text(encoding="utf-8"))
    sources = [attrs.get("src") for tag, attrs in parsed.elements if tag in ("img", "script", "iframe")]
    assert sources and all(s is None or s.startswith("data:image/png;base64,") for s in sources)
    assert not [attrs for tag, attrs in parsed.elements if tag == "link"]
    hrefs = [attrs.get("href", "") for tag, attrs in parsed.elements if tag == "a"]
    assert all("://" not in h for h in hrefs)


def test_gallery_shows_the_worst_cases(experiment_report: Path):
    parsed = parse_strict(experiment_report.read_text(encoding="utf-8"))
    figures = [attrs for tag, attrs in parsed.elements if tag == "figure"]
    assert [f["id"] for f in figures] == ["case-1", "case-2"]
    alts = [attrs["alt"] for tag, attrs in parsed.elements if tag == "img" and attrs.get("alt", "").startswith("overlay")]
    assert alts == [f"overlay of case {EVIL}", "overlay of case case_02"]


def test_worst_cases_pick_lowest_mean_dice_and_their_worst_class(report_inputs: ReportInputs):
    chosen = overlays.worst_cases(report_inputs.per_case, 2)
    assert [c[0] for c in chosen] == [EVIL, "case_02"]
    assert chosen[0][1:3] == ("tu<mour>&", 2) and chosen[0][3] == 0.0
    assert chosen[1][1:] == ("tu<mour>&", 2, 0.75)
    assert overlays.worst_cases(report_inputs.per_case, 0) == []
    assert len(overlays.worst_cases(report_inputs.per_case, 10)) == len(CASE_IDS)


def test_focus_slices_centre_and_largest_error():
    ref = np.zeros((6, 8, 10), dtype=bool)
    ref[1:4, 2:5, 3:8] = True  # centre (2, 3, 5)
    pred = ref.copy()
    pred[4, :, :] = True  # most errors on slice 4 of axis 0
    slices = overlays.focus_slices(ref, pred)
    assert slices["centre"] == (2, 3, 5)
    assert slices["error"][0] == 4
    both_empty = overlays.focus_slices(np.zeros((4, 6), bool), np.zeros((4, 6), bool))
    assert both_empty == {"centre": (2, 3), "error": (2, 3)}


def test_overlay_of_a_2d_image_is_one_panel():
    label = np.zeros((20, 24), dtype=np.int64)
    label[5:15, 6:18] = 1
    image = label * 10.0 + np.random.default_rng(0).normal(0, 1, label.shape)
    uri = overlays.overlay_figure(image, label, np.roll(label, 2, axis=1), (0.5, 0.5), [1], 1, "2D $case$")
    assert uri.startswith("data:image/png;base64,")


def test_gallery_notes_a_worst_case_without_files(report_inputs: ReportInputs):
    items = overlays.gallery(report_inputs.per_case, {}, 1)
    assert len(items) == 1 and items[0].figure is None and "no image" in items[0].note


def test_overlay_rejects_files_of_different_shapes(report_inputs: ReportInputs, tmp_path: Path):
    from tests.conftest import write_volume

    files = report_inputs.files["case_01"]
    small = write_volume(tmp_path / "small.nii.gz", np.zeros((3, 4, 5), np.uint8))
    bad = overlays.CaseFiles("case_01", files.image, files.reference, str(small))
    with pytest.raises(ValueError, match="differ in shape"):
        overlays.case_overlay(bad, "liver", 1, 0.5, [1, 2])


def test_report_cli_writes_the_report(report_inputs: ReportInputs, tmp_path: Path):
    """``python -m pipeline report`` in-process; a numeric case id (``007``) stays text."""
    import shutil

    from pipeline.__main__ import main

    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("case\timage\tlabel\tsplit\nunused\ta.nii.gz\tb.nii.gz\ttest\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"name": "cli", "manifest": str(manifest), "channels": [{"name": "image", "modality": "ct"}], "labels": {0: "background", 1: "liver", 2: "tumour"}},
        "experiments": {"unet": {}}, "report": {"worst_cases": 4},
    }))  # fmt: skip
    per_case = report_inputs.per_case.replace({"case": {"case_01": "007"}})
    per_case.to_csv(tmp_path / "per_case.tsv", sep="\t", index=False)
    report_inputs.summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    (tmp_path / "fold_0").mkdir()
    report_inputs.logs["fold_0"].to_csv(tmp_path / "fold_0" / "log.tsv", sep="\t", index=False)
    (tmp_path / "plans.json").write_text("{}")
    files = list(report_inputs.files.values())
    predictions = [f.prediction for f in files]
    predictions[0] = str(shutil.copy(predictions[0], tmp_path / "007.nii.gz"))
    common = [
        "report", "--config", str(config), "--experiment", "unet", "--per-case", str(tmp_path / "per_case.tsv"),
        "--summary", str(tmp_path / "summary.tsv"), "--logs", str(tmp_path / "fold_0" / "log.tsv"),
        "--plan", str(tmp_path / "plans.json"), "--output", str(tmp_path / "reports" / "unet.html"),
    ]  # fmt: skip
    status = main([*common, "--predictions", *predictions, "--images", *[f.image for f in files], "--labels", *[f.reference for f in files]])
    assert status == 0
    page = (tmp_path / "reports" / "unet.html").read_text(encoding="utf-8")
    parsed = parse_strict(page)
    assert [attrs["id"] for tag, attrs in parsed.elements if tag == "figure"] == ["case-1", "case-2", "case-3", "case-4"]
    assert "overlay of case 007" in page and "no image" not in page
    # one image and no label: a clear error, not a wrong pairing
    assert main([*common, "--predictions", predictions[0], "--images", files[0].image]) == 1
