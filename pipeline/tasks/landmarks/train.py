"""Training of a landmark experiment (``task: landmarks``) on one cross-validation fold.

``heatmap``: the network maps a patch ``B C *patch`` to ``B L *patch`` heatmaps; the loss is
the MSE to Gaussian targets (``sigma_mm``), weighted by ``1 + peak_weight * target`` so the
few voxels near a landmark count. ``regression``: encoder + pooled head predicting each
landmark's offset from the patch centre; the loss is the MSE of the offsets (half patch
sizes). Both see the same patches (``landmark_fraction`` of them around a landmark) for
the same number of iterations. Validation: mean radial error (mm) on the fold's
validation cases; the best checkpoint has the lowest. The spatial configuration of the
training cases' landmarks (:mod:`pipeline.tasks.landmarks.configuration`) decodes the
validation heatmaps and is stored in ``best.pt`` (``landmark_configuration``) for prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.models.heads import first_output
from pipeline.tasks.landmarks.configuration import CHECKPOINT_KEY, Configuration, learn_configuration
from pipeline.tasks.landmarks.geometry import index_to_world
from pipeline.tasks.landmarks.models import build_landmark_network, landmark_architecture
from pipeline.tasks.landmarks.predict import Locator
from pipeline.tasks.landmarks.sampling import LandmarkBatches, LandmarkCase, open_cases
from pipeline.tasks.landmarks.table import case_points, landmark_names, landmark_settings, read_landmarks
from pipeline.training.augment import build_augmentation
from pipeline.training.checkpoint import load_checkpoint, save_checkpoint
from pipeline.training.task import FoldTraining

log = logging.getLogger(__name__)

SPATIAL_AUGMENTATION = ("flip_prob", "affine_prob", "elastic_prob")
#: Sliding-window overlap of the validation (as segmentation's): training reads no inference setting.
VALIDATION_OVERLAP = 0.25


def intensity_augmentation(settings: Mapping[str, Any], spatial_dims: int) -> Any:
    """The experiment's augmentation without its spatial transforms (they would move the targets)."""
    if any(settings[k] > 0 for k in SPATIAL_AUGMENTATION):
        log.info("landmarks: spatial augmentation (%s) is not applied; intensity augmentation is", ", ".join(SPATIAL_AUGMENTATION))
    return build_augmentation({**settings, **{k: 0.0 for k in SPATIAL_AUGMENTATION}}, spatial_dims)


def radial_errors_mm(
    net: torch.nn.Module,
    arch: Mapping[str, Any],
    cases: Sequence[LandmarkCase],
    settings: Mapping[str, Any],
    configuration: Configuration | None,
    overlap: float,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Radial errors ``(cases, L)`` in mm of ``net`` on preprocessed ``cases``."""
    errors = []
    locator = Locator([net], arch, settings, configuration, overlap, batch_size, device)
    for case in cases:
        decoded = locator.locate(np.asarray(case.image), case.geometry)
        errors.append(np.linalg.norm(decoded.world - index_to_world(case.points, case.geometry), axis=1))
    return np.array(errors).reshape(len(cases), -1)


def load_points(config: Mapping[str, Any], cases: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(landmark names, {case: world points (L, dim) in mm})`` from the configured table."""
    path, declared = landmark_settings(config)
    table = read_landmarks(path, config["dataset"]["dimensions"], declared)
    names = landmark_names(table, declared)
    return names, {c: case_points(table, c, names, f"landmark table {path}") for c in cases}


class LandmarkTraining(FoldTraining):
    """The landmark task's training of one fold (see :class:`~pipeline.training.task.TaskTraining`)."""

    def setup(self) -> None:
        experiment, plan, split, preprocessed, config = self.experiment, self.plan, self.split, self.preprocessed, self.config
        self.lm = experiment["landmarks"]
        self.names, points = load_points(config, list(split["train"]) + list(split["val"]))
        self.architecture = landmark_architecture(experiment, plan, self.names)
        self.train_cases = open_cases(preprocessed, split["train"], points)
        self.val_cases = open_cases(preprocessed, split["val"], points)
        self.overlap = VALIDATION_OVERLAP
        self.configuration = learn_configuration([points[c] for c in split["train"]], self.names, self.lm["min_spread_mm"])
        log.info("%s landmarks %s, %d training and %d validation cases", self.lm["method"], self.names, len(split["train"]), len(split["val"]))

    def build(self) -> torch.nn.Module:
        return build_landmark_network(self.architecture)

    def batches(self, rank: int) -> torch.utils.data.Dataset:
        augment = intensity_augmentation(self.settings["augmentation"], self.architecture["spatial_dims"])
        lm = self.lm
        return LandmarkBatches(
            self.train_cases,
            self.plan["patch_size"],
            self.plan["batch_size"],
            lm["method"],
            lm["sigma_mm"],
            lm["landmark_fraction"],
            self.settings["seed"],
            augment,
        )

    def loss(self, model: torch.nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        output = first_output(model(batch["image"].to(device))).float()
        target = batch["target"].to(device)
        if self.lm["method"] == "heatmap":  # peak-weighted MSE: the few voxels near a landmark count
            return ((1.0 + self.lm["peak_weight"] * target) * (output - target) ** 2).mean()
        return torch.nn.functional.mse_loss(output, target)

    def validate(self, net: torch.nn.Module, device: torch.device) -> tuple[dict[str, float], float]:
        errors = radial_errors_mm(net, self.architecture, self.val_cases, self.lm, self.configuration, self.overlap, self.plan["batch_size"], device)
        if errors.size == 0:
            return {"val_mre_mm": float("nan"), "val_median_mm": float("nan"), "val_score": -float("inf")}, -float("inf")
        score = -float(errors.mean())
        return {"val_mre_mm": float(errors.mean()), "val_median_mm": float(np.median(errors)), "val_score": score}, score

    def finish(self, best: Path, device: torch.device) -> None:
        """Store the training landmarks' configuration in ``best.pt`` (prediction decodes with it)."""
        state = load_checkpoint(best)
        state[CHECKPOINT_KEY] = self.configuration.to_dict()
        save_checkpoint(best, state)
