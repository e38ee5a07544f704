"""The data check: more bad inputs, the whole-dataset check and per-case failure in Snakemake."""

import json

import numpy as np
import pytest
import yaml

from pipeline.__main__ import main
from pipeline.errors import CaseError
from pipeline.io.check import check_case, class_voxel_counts
from tests.conftest import WORKFLOW_CORES, blob_case, write_volume
from tests.test_workflow import run_snakemake

LABELS = {0: "background", 1: "outer", 2: "inner"}


def test_a_case_with_a_channel_fewer_fails_with_a_clear_message(tmp_path):
    """A manifest row with an empty channel entry: the channel count differs between cases."""
    image, label = blob_case()
    write_volume(tmp_path / "a.nii.gz", image)
    write_volume(tmp_path / "l.nii.gz", label)
    assert check_case("ok", [str(tmp_path / "a.nii.gz")] * 2, str(tmp_path / "l.nii.gz"), LABELS, 3, 1e-3)
    with pytest.raises(CaseError, match=r"no file given for input channel\(s\) \[2\] of 2") as info:
        check_case("c9", [str(tmp_path / "a.nii.gz"), ""], str(tmp_path / "l.nii.gz"), LABELS, 3, 1e-3)
    assert info.value.case == "c9"


def test_corrupt_gzip_is_reported_as_such(tmp_path):
    image, label = blob_case()
    write_volume(tmp_path / "a.nii.gz", image)
    write_volume(tmp_path / "l.nii.gz", label)
    data = bytearray((tmp_path / "a.nii.gz").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])  # same length, bad bytes
    (tmp_path / "a.nii.gz").write_bytes(bytes(data))
    with pytest.raises(CaseError, match="corrupt gzip data") as info:
        check_case("c1", [str(tmp_path / "a.nii.gz")], str(tmp_path / "l.nii.gz"), LABELS, 3, 1e-3)
    assert str(tmp_path / "a.nii.gz") in str(info.value)


def test_class_counts_of_large_labels_are_counted_in_slabs():
    label = np.random.default_rng(0).integers(0, 3, (70, 300, 300)).astype(np.uint8)
    assert class_voxel_counts(label).tolist() == np.bincount(label.ravel()).tolist()


def _config(tmp_path, manifest):
    config = {"dataset": {"manifest": str(manifest), "labels": LABELS}, "plan": {"folds": 2, "patch_size": [8, 8, 8], "batch_size": 2},
              "experiments": {"tiny": {"model": {"name": "unet", "channels": [4, 8]}, "training": {"epochs": 1, "iterations_per_epoch": 1}}}}  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _break_cases(manifest):
    """c0: a label value outside the set; c2: a missing image file."""
    root = manifest.parent
    _, label = blob_case(seed=0)
    label[0, 0, 0] = 7
    write_volume(root / "labels" / "c0.nii.gz", label, spacing=(1.0, 1.0, 1.5))
    (root / "images" / "c2.nii.gz").unlink()


def test_check_of_the_whole_dataset_reports_every_failing_case(tiny_dataset, tmp_path, capsys):
    config = _config(tmp_path, tiny_dataset)
    assert main(["check", "--config", str(config)]) == 0
    _break_cases(tiny_dataset)
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "2 of 4 case(s) failed the check" in err
    assert "case 'c0'" in err and "label value(s) [7]" in err
    assert "case 'c2'" in err and "does not exist" in err


def test_check_of_an_empty_dataset_fails(tmp_path, capsys):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("case\timage\tlabel\tsplit\n")
    assert main(["check", "--config", str(_config(tmp_path, manifest))]) == 1
    assert "lists no cases" in capsys.readouterr().err


def test_with_keep_going_a_bad_case_fails_alone(tiny_dataset, tmp_path):
    _break_cases(tiny_dataset)
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(_config(tmp_path, tiny_dataset).read_text(encoding="utf-8"))
    targets = [f"results/cases/c{i}/check.json" for i in range(4)]
    result = run_snakemake(workdir, "--cores", WORKFLOW_CORES, "--keep-going", *targets, timeout=300)
    # The workflow records a failed check (the fingerprint and the run's verdict then name
    # the case, tests/test_case_outcomes.py); the other cases' checks are made all the same.
    assert result.returncode == 0, result.stderr[-3000:]
    checks = [json.loads((workdir / t).read_text(encoding="utf-8")) for t in targets]
    assert [bool(c.get("failed")) for c in checks] == [True, False, True, False]
    assert "label value(s) [7] are not declared" in checks[0]["failed"] and "does not exist" in checks[2]["failed"]
    assert "label value(s) [7] are not declared" in (workdir / "logs/check_case/c0.log").read_text(encoding="utf-8")
    assert "does not exist" in (workdir / "logs/check_case/c2.log").read_text(encoding="utf-8")
