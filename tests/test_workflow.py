"""One small end-to-end Snakemake run of the whole pipeline on a tiny demo dataset.

The brain demo at 4 mm with 5 cases, 2 folds, a 1-epoch U-Net: every rule runs for real.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import validate_config
from pipeline.workflow import config_text
from tests.conftest import REPO, WORKFLOW_CORES

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

TINY = {
    "dataset": {"demo": "brain", "channels": [{"name": "t1", "modality": "mri"}], "labels": {0: "background", 1: "gray_matter", 2: "white_matter"}},
    "demo": {"cases": 6, "test_cases": 2, "spacing_mm": 4.0},
    "plan": {"folds": 2, "patch_size": [16, 16, 16], "batch_size": 2},
    "experiments": {
        "tiny": {
            "model": {"name": "unet", "channels": [4, 8]},
            "training": {"epochs": 2, "iterations_per_epoch": 2, "validate_every": 1, "augmentation": {"affine_prob": 0.5}},
            "inference": {"cases_per_job": 2},  # both test cases in one prediction job
        }
    },
}


def run_snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with ``config.yaml`` from there."""
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = run_snakemake(workdir, "--cores", WORKFLOW_CORES)
    assert result.returncode == 0, result.stderr[-4000:]
    # every job reads results/config.json: it was written before the first of them
    assert (workdir / "results/config.json").stat().st_mtime_ns <= (workdir / "results/demo/brain/manifest.tsv").stat().st_mtime_ns
    return workdir


def test_pipeline_writes_report_and_tables(finished_run):
    summary = pd.read_csv(finished_run / "results/evaluation/tiny/summary.tsv", sep="\t")
    assert {"gray_matter", "white_matter", "mean_foreground"} <= set(summary["class"])
    per_case = pd.read_csv(finished_run / "results/evaluation/tiny/per_case.tsv", sep="\t")
    assert set(per_case["case"]) == {"brain_004", "brain_005"}
    # inference.cases_per_job 2: one job predicted both test cases, loading the models once
    assert "inference.mirror auto" in (finished_run / "logs/predict_cases/tiny/chunk_0.log").read_text(encoding="utf-8")
    assert not (finished_run / "logs/predict_case").exists()
    assert per_case["dice"].between(0, 1).all()
    html = (finished_run / "reports/tiny.html").read_text(encoding="utf-8")
    assert "brain_004" in html and "white_matter" in html
    log = pd.read_csv(finished_run / "results/models/tiny/fold_0/log.tsv", sep="\t")
    assert list(log["epoch"]) == [1, 2]
    assert (finished_run / "results/demo/brain/manifest.tsv").exists()


def test_second_run_has_nothing_to_do(finished_run):
    result = run_snakemake(finished_run, "--cores", "1", "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_lint_has_no_findings(finished_run):
    result = run_snakemake(finished_run, "--lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_predict_target_segments_new_images_on_their_own_grid(finished_run):
    from pipeline.io.images import read_image

    new = finished_run / "new_scans"
    new.mkdir()
    source = finished_run / "results/demo/brain/images/brain_004.nii.gz"
    (new / "scan_a.nii.gz").write_bytes(source.read_bytes())
    config = finished_run / "config.yaml"
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["predict"] = {"experiment": "tiny", "input": str(new)}
    config.write_text(yaml.safe_dump(settings))
    try:
        result = run_snakemake(finished_run, "--cores", WORKFLOW_CORES, "predict")
    finally:
        settings.pop("predict")
        config.write_text(yaml.safe_dump(settings))
    assert result.returncode == 0, result.stderr[-3000:]
    labels, geometry = read_image(finished_run / "results/predict/tiny/scan_a.nii.gz")
    _, expected = read_image(source)
    assert geometry.mismatch(expected, 1e-6) is None and labels.max() <= 2


def test_changing_inference_settings_repredicts_without_retraining(finished_run):
    config = finished_run / "config.yaml"
    original = config.read_text(encoding="utf-8")
    settings = yaml.safe_load(original)
    settings["experiments"]["tiny"]["inference"]["overlap"] = 0.25
    config.write_text(yaml.safe_dump(settings))
    try:
        result = run_snakemake(finished_run, "--cores", "1", "-n")
    finally:
        config.write_text(original)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = set(re.findall(r"^\s*rule (\w+):", result.stdout + result.stderr, flags=re.MULTILINE))
    assert "predict_cases_0" in jobs and "train" not in jobs, jobs


def reordered(value):
    """``value`` with the keys of every mapping in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def planned_jobs(output: str) -> set[str]:
    """The rules of the jobs that a dry run lists."""
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.MULTILINE))


def test_reordering_keys_reruns_nothing_and_renaming_reruns_only_what_shows_names(finished_run):
    """Params are canonical, only evaluation and reports read the display names, and
    results/config.json is written by real runs only, and only when its text changes."""
    config, resolved = finished_run / "config.yaml", finished_run / "results/config.json"
    original = config.read_text(encoding="utf-8")
    # what the workflow writes for this config (an earlier test may have run another one)
    resolved_text = config_text(validate_config(yaml.safe_load(original)))
    resolved.write_text(resolved_text, encoding="utf-8")
    settings = reordered(yaml.safe_load(original))
    assert list(settings) != list(yaml.safe_load(original))
    try:
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
        result = run_snakemake(finished_run, "--cores", "1", "-n")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Nothing to be done" in result.stdout + result.stderr, planned_jobs(result.stdout + result.stderr)
        # A real job with the reordered config: the resolved config keeps its text and time.
        os.utime(resolved, ns=(1_000_000_000, 1_000_000_000))
        result = run_snakemake(finished_run, "--cores", "1", "reports/index.html", "--forcerun", "compare_segmentation")
        assert result.returncode == 0 and "Finished jobid" in result.stdout + result.stderr, result.stderr[-3000:]
        assert resolved.stat().st_mtime_ns == 1_000_000_000 and resolved.read_text(encoding="utf-8") == resolved_text
        settings["dataset"]["name"] = "renamed demo"
        settings["dataset"]["labels"][1] = "cortex"
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
        result = run_snakemake(finished_run, "--cores", "1", "-n")
        assert result.returncode == 0, result.stderr[-3000:]
        assert planned_jobs(result.stdout + result.stderr) == {"evaluate_case", "aggregate", "report", "compare_segmentation", "verdict", "all"}
    finally:
        config.write_text(original)
    assert resolved.read_text(encoding="utf-8") == resolved_text  # dry runs leave it alone


def test_dry_run_writes_nothing_under_results(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = run_snakemake(tmp_path, "--cores", "1", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "predict_cases_0" in planned_jobs(result.stdout + result.stderr)
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_snakemake_report_bundles_the_reports(finished_run):
    """``snakemake --report`` works on a finished run and the comparison page exists."""
    assert "tiny.html" in (finished_run / "reports/index.html").read_text(encoding="utf-8")
    result = run_snakemake(finished_run, "--report", "reports/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    page = (finished_run / "reports/report.html").read_text(encoding="utf-8")
    assert "per-class summary" in page and "experiments compared" in page
