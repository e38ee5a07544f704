"""A dataset without test cases (only imagesTr/labelsTr, as nnU-Net users have it) is
scored by cross-validation, in a real Snakemake run: each training case on the prediction
of the fold model that did not train on it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.preprocessing.plan import kfold_splits
from pipeline.workflow import Layout
from pipeline.workflow.cross_validation import evaluation_note, held_out_cases, validation_folds
from tests.test_case_outcomes import snakemake, write_case

FOLDS = 2


def make_dataset(folder: Path, trained: list[int]) -> Path:
    """Four labelled training cases, no test case; the config path."""
    rows = ["case\tt1\tlabel\tsplit"]
    for i in range(4):
        write_case(folder, f"tr{i}", i)
        rows.append(f"tr{i}\ttr{i}_img.nii.gz\ttr{i}_seg.nii.gz\ttrain")
    (folder / "cases.tsv").write_text("\n".join(rows) + "\n")
    training = {"folds": trained, "epochs": 1, "iterations_per_epoch": 1}
    config = {
        "dataset": {"name": "cubes", "manifest": "cases.tsv", "channels": [{"name": "t1", "modality": "mri"}], "labels": {0: "background", 1: "cube"}},
        "plan": {"folds": FOLDS, "patch_size": [8, 8, 8], "batch_size": 2},
        "experiments": {"tiny": {"model": {"name": "unet", "channels": [4, 8]}, "training": training, "inference": {"cases_per_job": 2}}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def test_folds_are_the_plans_split() -> None:
    cases = [f"c{i}" for i in range(7)]
    folds = validation_folds(cases, {"folds": 3, "seed": 4})
    splits = kfold_splits(cases, 3, 4)
    assert folds == {c: k for k, s in enumerate(splits) for c in s["val"]} and sorted(folds) == sorted(cases)
    assert held_out_cases(cases, folds, [1]) == [c for c in cases if c in splits[1]["val"]]
    assert validation_folds(cases[:2], {"folds": 3, "seed": 0}) == {}  # too few cases: the plan stage says so
    assert "set training.folds to [0, 1, 2]" in evaluation_note(2, 7, [1], 3)
    assert "set training.folds" not in evaluation_note(7, 7, [0, 1, 2], 3)


def test_layout_scores_the_held_out_cases_with_their_own_fold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.config import load_config

    config = load_config(make_dataset(tmp_path, [1]))
    monkeypatch.chdir(tmp_path)
    layout = Layout(config)
    held = kfold_splits([f"tr{i}" for i in range(4)], FOLDS, 0)[1]["val"]
    assert layout.cross_validated and layout.test_cases == [] and layout.scored_cases("tiny") == held
    assert layout.prediction_checkpoints("tiny", ".nii.gz", held[0]) == ["results/models/tiny/fold_1/best.pt"]
    assert all(all(c in held for c in chunk) for _, chunk in layout.chunks)
    assert set(layout.targets()) >= {"reports/tiny.html", "results/evaluation/tiny/summary.tsv", "reports/index.html"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("cv")
    make_dataset(folder, list(range(FOLDS)))
    result = snakemake(folder)
    assert result.returncode == 0, result.stderr[-4000:]
    return folder, result.stdout + result.stderr


def test_every_training_case_is_scored_out_of_fold(finished: tuple[Path, str]) -> None:
    finished, log = finished
    per_case = pd.read_csv(finished / "results/evaluation/tiny/per_case.tsv", sep="\t", dtype={"case": str})
    assert sorted(per_case["case"].unique()) == [f"tr{i}" for i in range(4)]
    splits = kfold_splits([f"tr{i}" for i in range(4)], FOLDS, 0)
    # every prediction job read the one fold that held its cases out
    jobs = re.findall(r"rule predict_cases_\d+:\n\s+input: ([^\n]+)\n\s+output: ([^\n]+)", log)
    assert len(jobs) == 2  # cases_per_job 2: each fold holds out two cases
    for inputs, outputs in jobs:
        cases = re.findall(r"results/predictions/tiny/(\w+)\.nii\.gz", outputs)
        checkpoints = re.findall(r"results/models/tiny/fold_(\d)/best\.pt", inputs)
        assert len(checkpoints) == 1 and all(c in splits[int(checkpoints[0])]["val"] for c in cases), (inputs, outputs)
    html = (finished / "reports/tiny.html").read_text(encoding="utf-8")
    assert "scored by cross-validation" in html and f"4 of 4 training cases, folds [0, 1] of {FOLDS})" in html
    # the plan's folds agree with what the Layout used
    assert [s["val"] for s in splits] == [s["val"] for s in __import__("json").loads((finished / "results/plans/splits.json").read_text())]
    dry = snakemake(finished, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, re.findall(r"rule (\w+):", dry.stdout)
