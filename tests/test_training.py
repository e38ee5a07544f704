"""Training: deterministic batches, safe checkpoints, and resumption after SIGKILL/SIGTERM
that reaches the same weights as an uninterrupted run."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.config import validate_config
from pipeline.preprocessing.plan import kfold_splits, make_plan
from pipeline.preprocessing.preprocess import preprocess_case
from pipeline.training.checkpoint import CheckpointError, load_checkpoint
from pipeline.training.sampling import BatchDataset, crop_with_padding
from tests.conftest import blob_case, write_volume

CONFIG = {
    "dataset": {"manifest": "unused.tsv", "labels": {0: "bg", 1: "outer", 2: "inner"}},
    "plan": {"folds": 2, "patch_size": [8, 8, 8], "batch_size": 2},
    "experiments": {
        "e": {
            "model": {"name": "unet", "channels": [4, 8], "dropout": 0.1},
            "training": {"epochs": 6, "iterations_per_epoch": 3, "validate_every": 2, "checkpoint_every": 1, "learning_rate": 0.05},
        }
    },
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Tiny preprocessed cases, plan, splits and config files."""
    root = tmp_path_factory.mktemp("train")
    config = validate_config(CONFIG)
    fingerprint = {
        "spacings": [[1.0, 1.0, 1.0]] * 4,
        "shapes": [[12, 14, 16]] * 4,
        "intensity": {"image": {}},
        "class_totals": {"bg": 100, "outer": 30, "inner": 10},
    }
    plan = make_plan(fingerprint, config)
    for i in range(4):
        image, label = blob_case(seed=i)
        write_volume(root / f"raw/i{i}.nii.gz", image)
        write_volume(root / f"raw/l{i}.nii.gz", label)
        preprocess_case(f"c{i}", [str(root / f"raw/i{i}.nii.gz")], str(root / f"raw/l{i}.nii.gz"), plan, root / "pre" / f"c{i}")
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "splits.json").write_text(json.dumps(kfold_splits([f"c{i}" for i in range(4)], 2, 0)))
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return root


def train_command(root: Path, fold_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "train", "--config", str(root / "config.yaml"), "--threads", "1", "--experiment", "e", "--fold", "0",
            "--plan", str(root / "plan.json"), "--splits", str(root / "splits.json"), "--preprocessed", str(root / "pre"), "--fold-dir", str(fold_dir)]  # fmt: skip


def run_training(root: Path, fold_dir: Path) -> None:
    result = subprocess.run(train_command(root, fold_dir), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def reference_run(prepared):
    fold_dir = prepared / "reference"
    run_training(prepared, fold_dir)
    return fold_dir


def test_batches_are_a_function_of_the_iteration(prepared):
    folders = [prepared / "pre" / f"c{i}" for i in range(4)]
    data = BatchDataset(folders, [8, 8, 8], 2, 0.5, seed=3)
    a, b, c = data[5], data[5], data[6]
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], c["image"])
    assert a["image"].shape == (2, 1, 8, 8, 8) and a["label"].shape == (2, 1, 8, 8, 8)


def test_crop_with_padding_outside_the_image():
    array = np.arange(16).reshape(4, 4)
    out = crop_with_padding(array, [-1, 2], [3, 3])
    assert out.tolist() == [[0, 0, 0], [2, 3, 0], [6, 7, 0]]


def test_training_writes_outputs_and_safe_checkpoints(reference_run):
    for name in ("best.pt", "last.pt", "log.tsv"):
        assert (reference_run / name).exists()
    state = load_checkpoint(reference_run / "last.pt")
    assert state["iteration"] == 18 and state["architecture"]["num_classes"] == 3
    assert state["versions"]["torch"] == str(torch.__version__)
    log = (reference_run / "log.tsv").read_text(encoding="utf-8").splitlines()
    assert log[0].startswith("epoch\ttrain_loss") and len(log) == 7
    assert "val_dice_inner" in log[0]
    # inference.mirror auto (the default): the best checkpoint carries its validation Dice
    # without and with mirroring, which prediction decides on.
    scores = load_checkpoint(reference_run / "best.pt")["mirror_validation"]
    assert 0 <= scores["dice"] <= 1 and 0 <= scores["dice_mirrored"] <= 1 and scores["cases"] == 2


def test_resume_after_sigkill_reaches_the_same_weights(prepared, reference_run):
    fold_dir = prepared / "killed"
    process = subprocess.Popen(train_command(prepared, fold_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = fold_dir / "work" / "resume.pt"
    deadline = time.time() + 120
    while not resume.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert resume.exists() and not (fold_dir / "last.pt").exists()
    interrupted_at = load_checkpoint(resume)["iteration"]
    assert 0 < interrupted_at < 18
    run_training(prepared, fold_dir)
    expected = load_checkpoint(reference_run / "last.pt")["model"]
    resumed = load_checkpoint(fold_dir / "last.pt")["model"]
    for key, value in expected.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6)


def test_sigterm_saves_a_checkpoint_and_exits_nonzero(prepared, reference_run):
    fold_dir = prepared / "terminated"
    process = subprocess.Popen(train_command(prepared, fold_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = fold_dir / "work" / "log.tsv"
    deadline = time.time() + 120
    while not log.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and "rerun to resume" in stderr
    assert (fold_dir / "work" / "resume.pt").exists()
    run_training(prepared, fold_dir)
    expected = load_checkpoint(reference_run / "last.pt")["model"]
    for key, value in load_checkpoint(fold_dir / "last.pt")["model"].items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pwned_by_checkpoint",))


def test_crafted_pickle_and_truncated_checkpoint_are_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, evil, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not Path("/tmp/pwned_by_checkpoint").exists()
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.ones(1000)}}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)


def test_two_data_parallel_processes_agree_on_the_weights(prepared):
    """torchrun with 2 CPU processes (gloo): DDP keeps the replicas identical."""
    fold_dir = prepared / "ddp"
    command = train_command(prepared, fold_dir) + ["--processes", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all 2 data-parallel replicas hold identical weights" in result.stderr
    assert load_checkpoint(fold_dir / "last.pt")["iteration"] == 18


def test_progress_bar_in_a_terminal_plain_lines_in_a_log_file(prepared, reference_run):
    """A terminal on stderr gets a redrawn bar; a log file (as a rule's) gets only plain lines.
    The pty has no size (0 x 0), where tqdm on its own would draw nothing."""
    import pty

    fold_dir = prepared / "tty"
    leader, follower = pty.openpty()
    process = subprocess.Popen(train_command(prepared, fold_dir), stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=300) == 0
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert "\r" in terminal and "18/18 100%" in terminal and "it/s" in terminal and " left" in terminal and "loss " in terminal
    assert "epoch 6/6" in terminal  # the per-epoch lines still show

    logged = prepared / "logged.log"
    with logged.open("w", encoding="utf-8") as handle:
        subprocess.run(train_command(prepared, prepared / "logged"), stdout=subprocess.DEVNULL, stderr=handle, timeout=300, check=True)
    text = logged.read_text(encoding="utf-8")
    assert "epoch 6/6" in text and "\r" not in text and "it/s" not in text


def test_progress_bar_text():
    """The tqdm bar: label, iterations, percentage, loss, rate and time left, redrawn in place;
    redrawn at once after a clear (the loop clears it for each epoch's log line)."""
    import io

    from pipeline.training.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ProgressBar(200, start=50, stream=stream, label="unet fold_0", per_second=0.001)  # throttled to one draw in 1000 s
    assert bar.enabled
    assert stream.getvalue().startswith("\runet fold_0 50/200  25% |")  # drawn at once, a resumed run part-way
    bar.update(60, loss=0.5)
    assert "60/200" not in stream.getvalue()  # throttled
    bar.clear()
    assert stream.getvalue().endswith("\r")
    bar.update(61, loss=0.5)
    assert "61/200  30%" in stream.getvalue() and "loss 0.5000" in stream.getvalue()  # redrawn after the clear
    bar.update(200, loss=0.25)
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert last.startswith("unet fold_0 200/200 100% |") and "it/s" in last and " left" in last and last.endswith("loss 0.2500")
    bar.close()
    assert stream.getvalue().endswith("\n")

    quiet = io.StringIO()  # not a terminal: a rule's log file
    bar = ProgressBar(10, stream=quiet)
    bar.update(5, loss=1.0)
    bar.clear()
    bar.close()
    assert not bar.enabled and quiet.getvalue() == ""


def test_compiled_training_reaches_the_same_weights(prepared, reference_run, tmp_path):
    """training.compile: torch.compile (Inductor, here on the CPU) trains the same network."""
    import copy

    config = copy.deepcopy(CONFIG)
    config["experiments"]["e"]["training"]["compile"] = True
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = train_command(prepared, tmp_path / "fold")
    command[command.index("--config") + 1] = str(tmp_path / "config.yaml")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.compile" in result.stderr
    expected = load_checkpoint(reference_run / "last.pt")["model"]
    for key, value in load_checkpoint(tmp_path / "fold" / "last.pt")["model"].items():
        torch.testing.assert_close(value, expected[key], rtol=1e-3, atol=1e-4)


def test_loader_workers_auto_uses_processes_only_on_cuda():
    from pipeline.runtime import loader_workers

    assert loader_workers("auto", torch.device("cpu")) == 0
    assert 1 <= loader_workers("auto", torch.device("cuda")) <= 8
    assert loader_workers(3, torch.device("cpu")) == 3
