"""The task-agnostic training engine on a task of the test's own: a non-finite loss stops
training with an error naming the epoch and iteration, and no output appears. And the
segmentation task's end of training: the ``inference.mirror: auto`` decision scores a
bounded number of validation cases (a case cap and a time budget), and says so in the log."""

from pathlib import Path

import pytest
import torch

from pipeline.training.loop import TrainingDiverged
from pipeline.training.task import train_task


class Batches(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, iteration: int) -> dict:
        return {"x": torch.full((2, 1), float(iteration)), "iteration": iteration}


class Toy:
    """A regression of y = 2x whose loss turns NaN at iteration ``bad``."""

    architecture = {"model": {"name": "toy"}, "spatial_dims": 2, "in_channels": 1, "num_classes": 1}
    score_key = "val_score"
    data_parallel = False

    def __init__(self, bad: int | None) -> None:
        self.bad = bad

    def build(self) -> torch.nn.Module:
        return torch.nn.Linear(1, 1)

    def batches(self, rank: int) -> torch.utils.data.Dataset:
        return Batches()

    def loss(self, model, batch, device):
        value = ((model(batch["x"]) - 2 * batch["x"]) ** 2).mean() * 1e-3
        return value * float("nan") if batch["iteration"] == self.bad else value

    def validate(self, net, device):
        return {"val_score": 0.0}, 0.0

    def finish(self, best: Path, device) -> None:
        pass


def _experiment(tmp_path):
    """The schema's training defaults, 3 epochs of 4 iterations."""
    from pipeline.config import validate_config

    settings = validate_config({"dataset": {"manifest": "m", "labels": {0: "bg", 1: "fg"}}, "experiments": {"e": {}}})["experiments"]["e"]["training"]
    return {"training": {**settings, "epochs": 3, "iterations_per_epoch": 4, "validate_every": 1, "checkpoint_every": 1}}


def test_a_nan_loss_stops_training_naming_epoch_and_iteration(tmp_path):
    experiment = _experiment(tmp_path)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, iteration 6 of 12"):
        train_task("toy", Toy(bad=5), experiment, {}, tmp_path / "fold_0", torch.device("cpu"))
    assert not (tmp_path / "fold_0" / "best.pt").exists() and not (tmp_path / "fold_0" / "last.pt").exists()


def test_a_finite_run_of_the_same_task_finishes_with_its_outputs(tmp_path):
    log = train_task("toy", Toy(bad=None), _experiment(tmp_path), {}, tmp_path / "fold_0", torch.device("cpu"))
    assert len(log) == 3 and all((tmp_path / "fold_0" / f).exists() for f in ("best.pt", "last.pt", "log.tsv"))


# inference.mirror: auto - the decision at the end of training costs a bounded share of it.

MIRROR_CONFIG = {
    "dataset": {"manifest": "unused.tsv", "labels": {0: "bg", 1: "outer", 2: "inner"}},
    "plan": {"folds": 2, "patch_size": [8, 8, 8], "batch_size": 2},
    "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}}},
}


@pytest.fixture()
def finished_segmentation(tmp_path):
    """A segmentation fold whose training is done but not finished: three validation cases,
    ``work/best.pt`` and ``work/log.tsv`` (10 s of training); returns (training, best.pt)."""
    import pandas as pd

    from pipeline.config import validate_config
    from pipeline.models import build_network
    from pipeline.preprocessing.plan import make_plan
    from pipeline.preprocessing.preprocess import preprocess_case
    from pipeline.tasks.segmentation.train import SegmentationTraining
    from pipeline.training.checkpoint import save_checkpoint
    from tests.conftest import blob_case, write_volume

    config = validate_config(MIRROR_CONFIG)
    fingerprint = {
        "spacings": [[1.0, 1.0, 1.0]] * 4,
        "shapes": [[12, 14, 16]] * 4,
        "intensity": {"image": {}},
        "class_totals": {"bg": 100, "outer": 30, "inner": 10},
    }
    plan = make_plan(fingerprint, config)
    for i in range(4):
        image, label = blob_case(seed=i)
        write_volume(tmp_path / f"raw/i{i}.nii.gz", image)
        write_volume(tmp_path / f"raw/l{i}.nii.gz", label)
        preprocess_case(f"c{i}", [str(tmp_path / f"raw/i{i}.nii.gz")], str(tmp_path / f"raw/l{i}.nii.gz"), plan, tmp_path / "pre" / f"c{i}")
    experiment = config["experiments"]["e"]
    assert experiment["inference"]["mirror"] == "auto"  # the default

    def make(**inference):
        config_e = {**config, "experiments": {"e": {**experiment, "inference": {**experiment["inference"], **inference}}}}
        spec = SegmentationTraining(config_e, "e", plan, {"train": ["c0"], "val": ["c1", "c2", "c3"]}, tmp_path / "pre")
        torch.manual_seed(0)
        best = tmp_path / "models" / "e" / "fold_0" / "work" / "best.pt"
        save_checkpoint(
            best, {"model": build_network(spec.architecture).state_dict(), "architecture": spec.architecture, "plan": plan, "experiment": experiment}
        )
        pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "seconds": [4.0, 6.0]}).to_csv(best.with_name("log.tsv"), sep="\t", index=False)
        return spec, best

    return make


def test_mirror_decision_scores_at_most_the_configured_number_of_cases(finished_segmentation, caplog):
    import logging

    from pipeline.training.checkpoint import load_checkpoint

    spec, best = finished_segmentation(mirror_cases=1)
    with caplog.at_level(logging.INFO):
        spec.finish(best, torch.device("cpu"))
    scores = load_checkpoint(best)["mirror_validation"]
    assert scores["cases"] == 1 and scores["validation_cases"] == 3
    text = caplog.text
    assert "on at most 1 of 3 validation cases" in text and "(axes all)" in text  # before: what it does
    assert "mirror check 1/1 c1" in text and "mirror check 2/" not in text
    assert (
        f"validation Dice {scores['dice']:.4f} without, {scores['dice_mirrored']:.4f} with mirroring on 1 of 3 cases: mirroring" in text
    )  # after: what it decided


def test_mirror_decision_stops_after_the_first_case_when_the_time_budget_is_spent(finished_segmentation, monkeypatch):
    """A budget that allows one case (no floor, no share of the training's time): only the
    first case in the split's order is scored, and its Dice is that of the case alone."""
    import numpy as np

    import pipeline.tasks.segmentation.train as segmentation
    from pipeline.models import build_network
    from pipeline.training.checkpoint import load_checkpoint

    monkeypatch.setattr(segmentation, "MIRROR_MIN_SECONDS", 0.0)
    spec, best = finished_segmentation(mirror_budget=0.0)
    spec.finish(best, torch.device("cpu"))
    scores = load_checkpoint(best)["mirror_validation"]
    assert scores["cases"] == 1 and scores["validation_cases"] == 3
    net = build_network(spec.architecture)
    net.load_state_dict(load_checkpoint(best)["model"])
    alone = segmentation.mean_dice(
        [net.eval()], spec.val_cases[:1], spec.patch, 3, spec.experiment["inference"]["overlap"], False, spec.batch_size, torch.device("cpu"), None
    )
    assert scores["dice"] == pytest.approx(float(np.nanmean(alone)))


def test_mirror_decision_with_room_scores_the_first_cases_in_order_and_runs_once(finished_segmentation):
    from pipeline.training.checkpoint import load_checkpoint

    spec, best = finished_segmentation(mirror_cases=2, mirror_budget=1e9)
    spec.finish(best, torch.device("cpu"))
    first = load_checkpoint(best)["mirror_validation"]
    assert first["cases"] == 2
    spec.finish(best, torch.device("cpu"))  # a rerun after a kill does not measure again
    assert load_checkpoint(best)["mirror_validation"] == first


def test_mirror_budget_is_a_share_of_the_training_with_a_floor_and_a_case_cap():
    from pipeline.tasks.segmentation.train import MIRROR_CASES, MIRROR_MIN_SECONDS, mirror_budget

    assert mirror_budget({}, 50, 20_000.0) == (MIRROR_CASES, 2_000.0)  # 10 % of the training's time
    assert mirror_budget({}, 3, 1.0) == (3, MIRROR_MIN_SECONDS)
    assert mirror_budget({"mirror_cases": 0, "mirror_budget": 0.5}, 3, 100.0) == (1, max(50.0, MIRROR_MIN_SECONDS))  # at least one case
