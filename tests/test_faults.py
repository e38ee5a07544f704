"""Fault injection: SIGKILL at a random point of each long-running stage leaves no output
that looks complete, and a rerun gives the undisturbed result; a full disk, a wrong
checkpoint and hostile names give clear errors."""

import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pipeline.io.images import read_image
from pipeline.training.checkpoint import CheckpointError, load_checkpoint, load_model_weights, save_checkpoint
from tests.conftest import WORKFLOW_CORES
from tests.test_workflow import TINY, run_snakemake


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny workflow: every stage's inputs and undisturbed outputs."""
    workdir = tmp_path_factory.mktemp("faults")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = run_snakemake(workdir, "--cores", WORKFLOW_CORES)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def stage_commands(w: Path, out: Path) -> dict[str, tuple[list[str], list[Path]]]:
    """Each long-running stage's command writing into ``out``, and the outputs it writes."""
    py = [sys.executable, "-m", "pipeline"]
    cfg = ["--config", str(w / "results/config.json"), "--threads", "1"]
    pre = w / "results/preprocessed"
    return {
        "preprocess": (py + ["preprocess", *cfg, "--case", "brain_004", "--plan", str(w / "results/plans/plans.json"), "--output-dir", str(out / "pre")],
                       [out / "pre/image.npy", out / "pre/label.npy", out / "pre/properties.json"]),
        "train": (py + ["train", *cfg, "--experiment", "tiny", "--fold", "0", "--plan", str(w / "results/plans/plans.json"), "--splits", str(w / "results/plans/splits.json"),
                        "--preprocessed", str(pre), "--fold-dir", str(out / "fold_0")],
                  [out / "fold_0/best.pt", out / "fold_0/last.pt", out / "fold_0/log.tsv"]),
        "predict": (py + ["predict-case", *cfg, "--experiment", "tiny", "--checkpoints", str(w / "results/models/tiny/fold_0/best.pt"), "--case-dir", str(pre / "brain_004"),
                          "--output", str(out / "pred.nii.gz")], [out / "pred.nii.gz"]),
        "evaluate": (py + ["evaluate-case", *cfg, "--experiment", "tiny", "--case", "brain_004", "--prediction", str(w / "results/predictions/tiny/brain_004.nii.gz"), "--output", str(out / "eval.tsv")],
                     [out / "eval.tsv"]),
        "report": (py + ["report", *cfg, "--experiment", "tiny", "--per-case", str(w / "results/evaluation/tiny/per_case.tsv"), "--summary", str(w / "results/evaluation/tiny/summary.tsv"),
                         "--logs", str(w / "results/models/tiny/fold_0/log.tsv"), "--plan", str(w / "results/plans/plans.json"), "--output", str(out / "report.html")],
                   [out / "report.html"]),
    }  # fmt: skip


def same_content(a: Path, b: Path) -> bool:
    """Equal results: arrays and images by value, checkpoints by weights, text by bytes."""
    if a.suffix == ".npy":
        return np.array_equal(np.load(a), np.load(b))
    if a.name.endswith(".nii.gz"):
        return np.array_equal(read_image(a)[0], read_image(b)[0])
    if a.suffix == ".pt":
        wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
        return all(torch.allclose(wa[k], wb[k], rtol=1e-5, atol=1e-6) for k in wa)
    if a.suffix == ".html":
        return b.read_text(encoding="utf-8").rstrip().endswith("</html>")
    if a.name == "log.tsv":  # the training log holds wall-clock seconds per epoch
        drop = lambda p: pd.read_csv(p, sep="\t").drop(columns="seconds")  # noqa: E731
        return drop(a).equals(drop(b))
    return a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("stage", ["preprocess", "train", "predict", "evaluate", "report"])
def test_sigkill_leaves_nothing_that_looks_complete_and_rerun_matches(run, tmp_path, stage):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    command, outputs = stage_commands(run, reference_dir)[stage]
    assert subprocess.run(command, capture_output=True, timeout=300, check=False, cwd=run).returncode == 0
    reference = {p.name: p for p in outputs}
    command, outputs = stage_commands(run, killed_dir)[stage]
    rng = random.Random(f"{stage}-kill")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=run)
    time.sleep(rng.uniform(0.3, 2.5))
    process.send_signal(signal.SIGKILL)
    process.wait()
    for path in outputs:  # whatever exists under a final name is complete and correct
        if path.exists():
            assert same_content(reference[path.name], path), f"{path} looks complete but is not"
    assert subprocess.run(command, capture_output=True, timeout=300, check=False, cwd=run).returncode == 0
    for path in outputs:
        assert same_content(reference[path.name], path)
    leftovers = [p for p in killed_dir.rglob("*.tmp*")]
    assert all(".tmp" in p.name for p in leftovers)  # only temporary names may remain


def test_disk_full_during_a_write_is_a_clear_error_and_leaves_no_output(run, tmp_path):
    command, outputs = stage_commands(run, tmp_path)["preprocess"]

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(command, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size, check=False, cwd=run)
    assert result.returncode == 1
    assert "could not write" in result.stderr and ("File too large" in result.stderr or "full disk" in result.stderr), result.stderr[-2000:]
    assert any(f"pre/{name}" in result.stderr for name in ("image.npy", "label.npy", "properties.json"))
    assert "Traceback" not in result.stderr
    assert not any(p.exists() for p in outputs)


def test_checkpoint_of_another_architecture_or_class_count_is_refused(run, tmp_path):
    from pipeline.models import build_network as make_model

    state = load_checkpoint(run / "results/models/tiny/fold_0/best.pt")
    arch = state["architecture"]
    other = {**arch, "num_classes": 5}
    with pytest.raises(CheckpointError, match="trained with num_classes=3, but this model needs num_classes=5"):
        load_model_weights(make_model(other), state, "best.pt", other)
    wider = {**arch, "model": {**arch["model"], "channels": [8, 16]}}
    forged = {**state, "architecture": wider}
    save_checkpoint(tmp_path / "forged.pt", forged)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_model_weights(make_model(wider), load_checkpoint(tmp_path / "forged.pt"), tmp_path / "forged.pt", wider)


def test_hostile_case_ids_never_reach_the_filesystem_or_shell(tmp_path):
    from pipeline.io.cases import ManifestError
    from pipeline.io.manifest import read_manifest

    marker = tmp_path / "pwned"
    for case in ("../escape", f"x;touch {marker}", "$(touch pwned)", "a b"):
        manifest = tmp_path / "m.tsv"
        manifest.write_text(f"case\timage\tlabel\n{case}\ti.nii.gz\tl.nii.gz\n")
        with pytest.raises(ManifestError, match="is not allowed"):
            read_manifest(manifest, ["image"])
    assert not marker.exists()
