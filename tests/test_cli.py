"""The command line: every stage has --help, and `evaluate` scores files without a config."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.__main__ import main
from tests.conftest import write_volume

STAGES = [
    "demo-case",
    "check",
    "fingerprint",
    "plan",
    "preprocess",
    "train",
    "predict-case",
    "predict",
    "evaluate",
    "evaluate-case",
    "aggregate",
    "report",
    "compare",
]


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as info:
        main([stage, "--help"])
    assert info.value.code == 0 and "usage: python -m pipeline " + stage in capsys.readouterr().out


def test_evaluate_scores_a_folder_of_predictions(tmp_path):
    ref = np.zeros((6, 8, 10), np.uint8)
    ref[1:5, 2:6, 2:8] = 1
    pred = ref.copy()
    pred[1:5, 2:6, 2:4] = 0
    write_volume(tmp_path / "ref" / "a.nii.gz", ref, spacing=(0.8, 0.8, 2.5))
    write_volume(tmp_path / "pred" / "a.nii.gz", pred, spacing=(0.8, 0.8, 2.5))
    command = [sys.executable, "-m", "pipeline", "evaluate", "--reference", str(tmp_path / "ref"), "--prediction", str(tmp_path / "pred"),
               "--output", str(tmp_path / "out.tsv"), "--labels", "1=organ", "--nnunet-compatible"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert table.loc[0, "class"] == "organ" and table.loc[0, "dice"] == pytest.approx(2 * 64 / (96 + 64))
    assert (tmp_path / "out_summary.tsv").exists() and (tmp_path / "out_nnunet.tsv").exists()


def test_predict_case_needs_one_output_per_case_folder(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("dataset: {manifest: m.tsv, labels: {0: bg, 1: fg}}\nexperiments: {e: {model: {name: unet}}}\n", encoding="utf-8")
    code = main(["predict-case", "--config", str(config), "--experiment", "e", "--checkpoints", "x.pt", "--case-dir", "a", "b", "--output", "a.nii.gz"])
    assert code == 1 and "2 case folder(s) but 1 output(s)" in capsys.readouterr().err
