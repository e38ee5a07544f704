"""Dataset-level findings on the labels, from real files through the check, fingerprint and
plan stages to the report; and labels that are missing, unreadable or not given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from markupsafe import escape

from pipeline.__main__ import main
from pipeline.evaluation import Conventions
from tests.conftest import blob_case, write_volume
from tests.reporting.html_check import parse_strict

LABELS = {0: "background", 1: "outer", 2: "inner", 3: "extra", 4: "tumour"}
SPACING = (1.0, 1.0, 1.5)


def _label(seed: int, inner: bool = True, tumour: bool = False, empty: bool = False) -> np.ndarray:
    """A blob label (classes 1 and 2), optionally without class 2, with class 4, or all background."""
    label = blob_case(seed=seed)[1]
    if not inner:
        label[label == 2] = 1
    if tumour:
        label[1, 1:3, 1:3] = 4
    return np.zeros_like(label) if empty else label


def _dataset(root: Path, cases: dict[str, tuple[str, np.ndarray | None]]) -> Path:
    """Write images and labels of ``{case: (split, label or None)}``, a manifest and a config; returns the config."""
    lines = ["case\timage\tlabel\tsplit"]
    for i, (case, (split, label)) in enumerate(cases.items()):
        write_volume(root / "images" / f"{case}.nii.gz", blob_case(seed=i)[0], SPACING)
        if label is not None:
            write_volume(root / "labels" / f"{case}.nii.gz", label, SPACING)
        lines.append(f"{case}\timages/{case}.nii.gz\t{'' if label is None else f'labels/{case}.nii.gz'}\t{split}")
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n")
    config = {"dataset": {"manifest": str(root / "manifest.tsv"), "labels": LABELS}, "plan": {"folds": 2, "patch_size": [8, 8, 8], "batch_size": 2},
              "experiments": {"tiny": {"model": {"name": "unet", "channels": [4, 8]}}}}  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root / "config.yaml"


def _check_all(config: Path, cases: list[str]) -> list[str]:
    out = config.parent / "checks"
    for case in cases:
        assert main(["check", "--config", str(config), "--case", case, "--output", str(out / f"{case}.json")]) == 0
    return [str(out / f"{case}.json") for case in cases]


def _fingerprint_and_plan(config: Path, checks: list[str]) -> tuple[dict, dict]:
    root = config.parent
    assert main(["fingerprint", "--config", str(config), "--checks", *checks, "--output", str(root / "fingerprint.json")]) == 0
    assert main(["plan", "--config", str(config), "--fingerprint", str(root / "fingerprint.json"), "--output", str(root / "plans.json"),
                 "--splits", str(root / "splits.json")]) == 0  # fmt: skip
    return json.loads((root / "fingerprint.json").read_text()), json.loads((root / "plans.json").read_text())


TRAIN = {f"tr{i}": ("train", _label(i)) for i in range(4)}


def test_class_findings_are_logged_written_and_carried_into_the_plan(tmp_path, caplog):
    cases = {**TRAIN, "te1": ("test", _label(5, inner=False, tumour=True)), "te2": ("test", _label(6, inner=False))}
    config = _dataset(tmp_path, cases)
    checks = _check_all(config, list(cases))
    with caplog.at_level(logging.WARNING):
        fingerprint, plan = _fingerprint_and_plan(config, checks)
    warnings = fingerprint["warnings"]
    assert len(warnings) == 3, warnings
    untested, nowhere, only_test = warnings  # in label order
    assert "'tumour' (label 4) occurs only in test labels (1 of 2: te1)" in only_test
    assert "'extra' (label 3) is declared in dataset.labels but occurs in none of the 4 training and 2 test label(s)" in nowhere
    assert "'inner' (label 2) occurs in none of the 2 test label(s): it cannot be evaluated" in untested
    assert plan["warnings"] == warnings
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(any(w in m for m in logged) for w in warnings)
    assert fingerprint["cases"] == ["tr0", "tr1", "tr2", "tr3"]  # the statistics stay training-only
    assert fingerprint["class_totals"]["tumour"] == 0 and fingerprint["test_class_totals"]["tumour"] == 4


def test_the_workflow_fingerprint_sees_training_labels_only_and_the_report_names_a_test_only_class(tmp_path):
    """The workflow gives the fingerprint the training checks only (no test case may change
    the plan); a class that only test references hold is then found by the report, from the
    plan's training voxel counts and the summary's reference counts."""
    import pandas as pd

    from pipeline.reporting.report import report_warnings

    cases = {**TRAIN, "te1": ("test", _label(5, tumour=True))}
    config = _dataset(tmp_path, cases)
    checks = _check_all(config, list(cases))
    fingerprint, plan = _fingerprint_and_plan(config, checks[:4])  # the training cases' checks only
    assert not any("test" in w for w in fingerprint["warnings"])
    assert any("'tumour' (label 4) is declared in dataset.labels but occurs in none of the 4 training label(s)" in w for w in fingerprint["warnings"])
    assert plan["training_class_voxels"]["tumour"] == 0
    summary = pd.DataFrame([{"class": "tumour", "n_reference": 1, "evaluable": True, "note": ""}])
    assert any(line.startswith("tumour: occurs in 1 test reference(s) but in no training label") for line in report_warnings(summary, plan))


def test_labels_all_background_everywhere_is_one_finding(tmp_path):
    cases = {f"tr{i}": ("train", _label(i, empty=True)) for i in range(3)} | {"te1": ("test", _label(4, empty=True))}
    config = _dataset(tmp_path, cases)
    fingerprint, plan = _fingerprint_and_plan(config, _check_all(config, list(cases)))
    assert len(fingerprint["warnings"]) == 1
    assert "every label is all background: none of the 3 training and 1 test label(s)" in fingerprint["warnings"][0]
    assert plan["warnings"] == fingerprint["warnings"]


def test_report_shows_the_dataset_findings_of_the_plan(tmp_path):
    from pipeline.reporting.report import write_experiment_report
    from tests.reporting.conftest import make_inputs

    cases = {**TRAIN, "te1": ("test", _label(5, tumour=True))}
    config = _dataset(tmp_path, cases)
    fingerprint, plan = _fingerprint_and_plan(config, _check_all(config, list(cases)))
    inputs = make_inputs(tmp_path)
    output = tmp_path / "report.html"
    write_experiment_report(inputs.results(), plan, Conventions(), output)
    html = output.read_text(encoding="utf-8")
    parse_strict(html)
    assert 'id="warnings"' in html
    for warning in fingerprint["warnings"]:
        assert f"<li>dataset: {escape(warning)}</li>" in html  # escaped as the template does
    assert "occurs only in test labels" in html


def test_a_test_case_whose_label_file_is_missing_fails_its_check(tmp_path, capsys):
    cases = {**TRAIN, "te1": ("test", _label(5))}
    config = _dataset(tmp_path, cases)
    missing = tmp_path / "labels" / "te1.nii.gz"
    missing.unlink()
    assert main(["check", "--config", str(config), "--case", "te1", "--output", str(tmp_path / "te1.json")]) == 1
    err = capsys.readouterr().err
    assert "case 'te1'" in err and str(missing) in err and "label file does not exist" in err
    assert not (tmp_path / "te1.json").exists()


def test_a_test_case_whose_label_is_unreadable_fails_its_check(tmp_path, capsys):
    cases = {**TRAIN, "te1": ("test", _label(5))}
    config = _dataset(tmp_path, cases)
    broken = tmp_path / "labels" / "te1.nii.gz"
    broken.write_bytes(b"not an image at all")
    assert main(["check", "--config", str(config), "--case", "te1", "--output", str(tmp_path / "te1.json")]) == 1
    err = capsys.readouterr().err
    assert "case 'te1'" in err and str(broken) in err and "label: cannot be read as an image" in err


@pytest.mark.parametrize("split", ["test", "train"])
def test_a_case_without_a_label_entry_passes_the_check_and_is_a_finding(tmp_path, split, caplog):
    cases = {**TRAIN, "te1": ("test", _label(5)), "nolab": (split, None)}
    config = _dataset(tmp_path, cases)
    with caplog.at_level(logging.WARNING):
        checks = _check_all(config, list(cases))
    check = json.loads(Path(checks[-1]).read_text())
    assert check["labelled"] is False and "class_counts" not in check
    assert json.loads(Path(checks[0]).read_text())["labelled"] is True
    assert any("case nolab" in r.getMessage() and "no label" in r.getMessage() for r in caplog.records)
    fingerprint, _ = _fingerprint_and_plan(config, checks)
    effect = "they cannot be evaluated" if split == "test" else "they count as all background"
    assert any(f"1 {split if split == 'test' else 'training'} case(s) have no label (nolab): {effect}" in w for w in fingerprint["warnings"])
