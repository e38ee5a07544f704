"""Cases that cannot be scored, and work folders that move, in real Snakemake runs.

A tiny manifest dataset (12^3 voxel cubes): four training cases, and three test cases - one
good, one without a label (predicted, never scored), one whose image is corrupt (fails its
check). The run in which the corrupt case fails its check stops at that case's
preprocessing (the other cases go on with --keep-going); from the next run on it is left
out: the tables and the report hold the good case and name the two others, and the run's
last step fails naming the corrupt case and its file. Fixing that file rescores it without retraining. A copy of the finished folder
reruns nothing; a deleted intermediate is rebuilt before the next job that needs it.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from pipeline.errors import ConfigError
from pipeline.workflow import Layout
from tests.conftest import REPO, WORKFLOW_CORES

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def write_case(folder: Path, case: str, seed: int, label: bool = True) -> None:
    """A noisy bright cube and its label (12^3 voxels, 1 mm)."""
    cube = np.zeros((12, 12, 12), np.uint8)
    cube[3:9, 3:9, 3:9] = 1
    image = (2.0 * cube + np.random.default_rng(seed).normal(size=cube.shape)).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(image), str(folder / f"{case}_img.nii.gz"))
    if label:
        sitk.WriteImage(sitk.GetImageFromArray(cube), str(folder / f"{case}_seg.nii.gz"))


def make_dataset(folder: Path) -> Path:
    """The dataset and its config (relative paths, inside the work folder); the config path."""
    rows = ["case\tt1\tlabel\tsplit"]
    for i in range(4):
        write_case(folder, f"tr{i}", i)
        rows.append(f"tr{i}\ttr{i}_img.nii.gz\ttr{i}_seg.nii.gz\ttrain")
    write_case(folder, "good", 10)
    write_case(folder, "unlabelled", 11, label=False)
    write_case(folder, "corrupt", 12)
    (folder / "corrupt_img.nii.gz").write_bytes(b"not an image")
    rows += [
        "good\tgood_img.nii.gz\tgood_seg.nii.gz\ttest",
        "unlabelled\tunlabelled_img.nii.gz\t\ttest",
        "corrupt\tcorrupt_img.nii.gz\tcorrupt_seg.nii.gz\ttest",
    ]
    (folder / "cases.tsv").write_text("\n".join(rows) + "\n")
    config = {
        "dataset": {"name": "cubes", "manifest": "cases.tsv", "channels": [{"name": "t1", "modality": "mri"}], "labels": {0: "background", 1: "cube"}},
        "plan": {"folds": 2, "patch_size": [8, 8, 8], "batch_size": 2},
        "experiments": {"tiny": {"model": {"name": "unet", "channels": [4, 8]}, "training": {"folds": [0], "epochs": 1, "iterations_per_epoch": 1}}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def snakemake(folder: Path, *args: str, config: str = "config.yaml") -> subprocess.CompletedProcess:
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(folder),
        "--configfile",
        str(folder / config),
        "--cores",
        WORKFLOW_CORES,
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outcomes")
    make_dataset(folder)
    first = snakemake(folder, "--keep-going")
    assert first.returncode != 0
    log = (folder / "logs" / "preprocess_case" / "corrupt.log").read_text()
    assert "case 'corrupt'" in log and "failed its check" in log and "cannot be read" in log
    result = snakemake(folder, "--keep-going")
    return folder, result


def test_a_failed_test_case_is_named_and_every_other_output_is_made(first_run):
    folder, result = first_run
    assert result.returncode != 0
    verdict = (folder / "logs" / "verdict.log").read_text()
    assert "1 test case(s) failed their check" in verdict and "corrupt" in verdict and "corrupt_img.nii.gz" in verdict and "cannot be read" in verdict
    outcomes = json.loads((folder / "results" / "cases" / "test_outcomes.json").read_text())
    assert outcomes["passed"] == ["good", "unlabelled"] and list(outcomes["failed"]) == ["corrupt"]
    per_case = pd.read_csv(folder / "results" / "evaluation" / "tiny" / "per_case.tsv", sep="\t", dtype={"case": str})
    assert set(per_case["case"]) == {"good"}
    html = (folder / "reports" / "tiny.html").read_text()
    assert "test case corrupt is not scored" in html and "test case unlabelled is not scored" in html and "unlabelled" in html
    assert (folder / "reports" / "index.html").exists()


def test_an_unlabelled_test_case_is_predicted_not_scored_and_has_no_label_file(first_run):
    folder, _ = first_run
    assert (folder / "results" / "predictions" / "tiny" / "unlabelled.nii.gz").exists()
    assert not (folder / "results" / "evaluation" / "tiny" / "cases" / "unlabelled.tsv").exists()
    assert sorted(p.name for p in (folder / "results" / "preprocessed" / "unlabelled").iterdir()) == ["image.npy", "properties.json"]


def test_fixing_the_case_scores_it_without_retraining_then_a_moved_copy_reruns_nothing(first_run, tmp_path):
    folder, _ = first_run
    write_case(folder, "corrupt", 12)  # now a good image
    result = snakemake(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule train:" not in result.stderr and "rule check_case:" in result.stderr
    per_case = pd.read_csv(folder / "results" / "evaluation" / "tiny" / "per_case.tsv", sep="\t", dtype={"case": str})
    assert set(per_case["case"]) == {"good", "corrupt"}

    copy = tmp_path / "moved"
    shutil.copytree(folder, copy, symlinks=True)
    again = snakemake(copy, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]

    # A deleted intermediate is rebuilt before the next job that reads it.
    (copy / "results" / "preprocessed" / "tr1" / "image.npy").unlink()
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["experiments"]["tiny"]["training"]["epochs"] = 2
    (copy / "more.yaml").write_text(yaml.safe_dump(config))
    changed = snakemake(copy, "-n", config="more.yaml")
    output = changed.stdout + changed.stderr
    assert changed.returncode == 0, output[-3000:]
    assert re.search(r"^\s*rule preprocess_case:\n(?:\s+\w.*\n)*?\s+wildcards: case=tr1$", output, flags=re.MULTILINE), output[-3000:]
    assert "rule train:" in output


def test_a_training_case_without_a_label_is_refused_naming_it(tmp_path):
    from pipeline.config import resolve_paths, validate_config

    config_path = make_dataset(tmp_path)
    text = (tmp_path / "cases.tsv").read_text().replace("tr2\ttr2_img.nii.gz\ttr2_seg.nii.gz", "tr2\ttr2_img.nii.gz\t")
    (tmp_path / "cases.tsv").write_text(text)
    config = validate_config(resolve_paths(yaml.safe_load(config_path.read_text()), tmp_path))
    with pytest.raises(ConfigError, match=r"1 training case\(s\) have no label in .*cases.tsv: \['tr2'\].*split=test"):
        Layout(config)
