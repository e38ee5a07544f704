"""One trainer per fold at a time: a second trainer of the same fold waits for the running
one (real processes holding a real ``flock``), then finds the fold finished and returns
without training, so its job succeeds and the outputs stay; a lock dies with its process.
The slow test kills only Snakemake while its training runs and reruns the workflow at once."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pipeline.training.checkpoint import load_checkpoint
from pipeline.training.lock import FoldLock, fold_finished
from tests.conftest import REPO
from tests.test_training_engine import Toy, _experiment
from tests.test_workflow import SNAKEMAKE, TINY, run_snakemake


class GatedToy(Toy):
    """The toy regression of ``test_training_engine``, stopped at iteration ``gate`` until the
    file ``go`` exists (it writes ``started`` then): a trainer caught mid-training."""

    def __init__(self, folder: Path, gate: int | None, refuse: bool = False) -> None:
        super().__init__(bad=None)
        self.folder, self.gate, self.refuse = folder, gate, refuse

    def build(self) -> torch.nn.Module:
        if self.refuse:
            raise AssertionError("this trainer must not train")
        return super().build()

    def loss(self, model, batch, device):
        if batch["iteration"] == self.gate:
            (self.folder / "started").touch()
            while not (self.folder / "go").exists():
                time.sleep(0.05)
        return super().loss(model, batch, device)


TRAINER = """
import logging, sys, time
from pathlib import Path
import torch
from pipeline.training.task import train_task
from tests.test_training_lock import GatedToy, _experiment
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
folder, gate, refuse = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "refuse"
while sys.argv[4] == "second" and not (folder / "started").exists():  # imported meanwhile
    time.sleep(0.05)
train_task("toy", GatedToy(folder, gate if gate >= 0 else None, refuse), _experiment(folder), {}, folder / "fold_0", torch.device("cpu"))
"""


def start_trainer(folder: Path, name: str, gate: int | None, refuse: bool = False) -> tuple[subprocess.Popen, Path]:
    """A ``train_task`` of the toy in a process of its own; returns it and its log file. The
    ``second`` starts training once the first is mid-training (it imports meanwhile)."""
    log = folder / f"{name}.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-c", TRAINER, str(folder), str(-1 if gate is None else gate), "refuse" if refuse else "train", name],
            stdout=subprocess.DEVNULL,
            stderr=handle,
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    return process, log


def wait_for(condition, what: str, timeout: float = 120.0, processes: tuple[subprocess.Popen, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for process in processes:
            assert process.poll() is None, f"a process ended (status {process.returncode}) before {what}"
        time.sleep(0.05)


def test_a_second_trainer_waits_then_finds_the_fold_finished_and_does_not_train(tmp_path):
    first, first_log = start_trainer(tmp_path, "first", gate=5)
    second, second_log = start_trainer(tmp_path, "second", gate=None, refuse=True)
    try:
        wait_for((tmp_path / "started").exists, "the first trainer to be mid-training", processes=(first,))
        wait_for(lambda: "waiting for it to end" in second_log.read_text(), "the second trainer to wait", processes=(first, second))
        message = next(line for line in second_log.read_text().splitlines() if "waiting for it to end" in line)
        assert f"pid={first.pid} host={socket.gethostname()}" in message and "fold_0/work/train.lock" in message
        assert second.poll() is None  # it waits as long as the first one trains
        (tmp_path / "go").touch()
        assert first.wait(timeout=120) == 0, first_log.read_text()[-3000:]
        assert second.wait(timeout=120) == 0, second_log.read_text()[-3000:]  # it built no network
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    assert "already trained" in second_log.read_text() and "not training it again" in second_log.read_text()
    fold = tmp_path / "fold_0"
    assert fold_finished(fold) and len(pd.read_csv(fold / "log.tsv", sep="\t")) == 3
    assert load_checkpoint(fold / "last.pt")["iteration"] == 12


def test_the_lock_dies_with_its_process_and_the_waiting_trainer_resumes(tmp_path):
    first, first_log = start_trainer(tmp_path, "first", gate=6)  # epoch 1 checkpointed, in epoch 2
    second, second_log = start_trainer(tmp_path, "second", gate=None)
    try:
        wait_for((tmp_path / "started").exists, "the first trainer to be mid-training", processes=(first,))
        wait_for(lambda: "waiting for it to end" in second_log.read_text(), "the second trainer to wait", processes=(first, second))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        assert second.wait(timeout=120) == 0, second_log.read_text()[-3000:]
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    text = second_log.read_text()
    assert "the other training ended" in text and "resuming toy fold_0 at iteration 4 of 12" in text
    assert fold_finished(tmp_path / "fold_0") and load_checkpoint(tmp_path / "fold_0" / "last.pt")["iteration"] == 12


def test_the_lock_file_names_its_holder_while_held_and_nobody_after(tmp_path):
    lock = FoldLock(tmp_path / "work", "test")
    with lock:
        assert lock.holder().startswith(f"pid={os.getpid()} host={socket.gethostname()} started=")
        probe = subprocess.run(
            [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(lock.path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert probe.returncode != 0 and "BlockingIOError" in probe.stderr  # held against other processes
    assert lock.path.read_text() == "" and not lock.waited


def test_a_finished_fold_is_not_trained_again_by_a_later_trainer(tmp_path):
    from pipeline.training.task import train_task

    train_task("toy", Toy(bad=None), _experiment(tmp_path), {}, tmp_path / "fold_0", torch.device("cpu"))
    before = {name: (tmp_path / "fold_0" / name).stat().st_mtime_ns for name in ("best.pt", "last.pt", "log.tsv")}
    log = train_task("toy", GatedToy(tmp_path, gate=None, refuse=True), _experiment(tmp_path), {}, tmp_path / "fold_0", torch.device("cpu"))
    assert len(log) == 3 and before == {name: (tmp_path / "fold_0" / name).stat().st_mtime_ns for name in before}


#: The tiny workflow with a training long enough to be killed in (fold 0 only is run).
LONGER = {
    **TINY,
    "experiments": {"tiny": {**TINY["experiments"]["tiny"], "training": {**TINY["experiments"]["tiny"]["training"], "epochs": 6, "iterations_per_epoch": 4}}},
}
FOLD = "results/models/tiny/fold_0"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_killing_only_snakemake_then_rerunning_at_once_keeps_the_finished_model(tmp_path):
    """SIGKILL the Snakemake process alone at a random epoch of its training; its trainer
    goes on. Rerun at once (``--unlock`` first, as after any killed Snakemake): the rerun's
    trainer waits for the orphan, then finds the fold finished and succeeds, and Snakemake
    keeps the outputs, which equal those of an uninterrupted run. The orphan is held with
    SIGSTOP from the kill until the rerun's trainer waits for it, so the rerun surely comes
    while it still runs, however fast or loaded the machine is."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(LONGER))
    target = f"{FOLD}/best.pt"
    result = run_snakemake(tmp_path, "--cores", "2", target)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = load_checkpoint(tmp_path / target)["model"]
    train_log = tmp_path / "logs/train/tiny/fold_0.log"
    subprocess.run(["rm", "-r", str(tmp_path / FOLD), str(train_log)], check=True)
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "2",
        target,
    ]
    rng = random.Random()
    epoch = rng.randint(1, 4)
    orphan = None
    with (tmp_path / "first.out").open("w") as out:
        head = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_for(lambda: train_log.exists() and f"epoch {epoch}/6" in train_log.read_text(), f"epoch {epoch} of the training", timeout=300, processes=(head,))
        time.sleep(rng.uniform(0.0, 0.3))
        lock_text = (tmp_path / FOLD / "work/train.lock").read_text()
        orphan = int(lock_text.split("pid=")[1].split()[0])
        head.send_signal(signal.SIGKILL)  # Snakemake alone, not its job
        head.wait(timeout=60)
        os.kill(orphan, signal.SIGSTOP)
        assert _alive(orphan) and not (tmp_path / FOLD / "last.pt").exists(), "the training ended before Snakemake was killed"

        assert run_snakemake(tmp_path, "--unlock").returncode == 0
        with (tmp_path / "rerun.out").open("w") as out:
            rerun = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wait_for(
            lambda: train_log.exists() and "waiting for it to end" in train_log.read_text(), "the rerun's trainer to wait", timeout=300, processes=(rerun,)
        )
        assert f"pid={orphan} " in train_log.read_text()
        os.kill(orphan, signal.SIGCONT)
        assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.out").read_text()[-3000:] + train_log.read_text()[-3000:]
        wait_for(lambda: not _alive(orphan), "the orphaned trainer to end", timeout=300)
    finally:
        if orphan is not None and _alive(orphan):
            os.kill(orphan, signal.SIGCONT)
            os.kill(orphan, signal.SIGKILL)
        if head.poll() is None:
            head.kill()
    assert "already trained" in train_log.read_text()
    assert "Removing output files" not in (tmp_path / "rerun.out").read_text()
    for name in ("best.pt", "last.pt", "log.tsv"):
        assert (tmp_path / FOLD / name).exists(), name
    assert list(pd.read_csv(tmp_path / FOLD / "log.tsv", sep="\t")["epoch"]) == [1, 2, 3, 4, 5, 6]
    weights = load_checkpoint(tmp_path / target)["model"]
    for key, value in reference.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-5, atol=1e-6)
    again = run_snakemake(tmp_path, "--cores", "1", "-n", target)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:] + again.stderr[-2000:]
