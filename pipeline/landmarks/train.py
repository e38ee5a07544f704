"""Training of a landmark experiment (``task: landmarks``) on one cross-validation fold.

``heatmap``: the network maps a patch ``B C *patch`` to ``B L *patch`` heatmaps; the loss is
the MSE to Gaussian targets (``sigma_mm``), weighted by ``1 + peak_weight * target`` so the
few voxels near a landmark count. ``regression``: encoder + pooled head predicting each
landmark's offset from the patch centre; the loss is the MSE of the offsets (half patch
sizes). Both see the same patches (``landmark_fraction`` of them around a landmark) for
the same number of iterations. Validation: mean radial error (mm) on the fold's
validation cases; the best checkpoint has the lowest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.landmarks.geometry import index_to_world
from pipeline.landmarks.loop import run_training
from pipeline.landmarks.models import build_landmark_network, first_output, landmark_architecture
from pipeline.landmarks.predict import locate_landmarks
from pipeline.landmarks.sampling import LandmarkBatches, LandmarkCase, open_cases
from pipeline.landmarks.table import case_points, landmark_names, landmark_settings, read_landmarks
from pipeline.training.augment import build_augmentation
from pipeline.training.device import select_device

log = logging.getLogger(__name__)

SPATIAL_AUGMENTATION = ("flip_prob", "affine_prob", "elastic_prob")


def intensity_augmentation(settings: Mapping[str, Any], spatial_dims: int) -> Any:
    """The experiment's augmentation without its spatial transforms (they would move the targets)."""
    if any(settings[k] > 0 for k in SPATIAL_AUGMENTATION):
        log.info("landmarks: spatial augmentation (%s) is not applied; intensity augmentation is", ", ".join(SPATIAL_AUGMENTATION))
    return build_augmentation({**settings, **{k: 0.0 for k in SPATIAL_AUGMENTATION}}, spatial_dims)


def heatmap_loss(peak_weight: float) -> Any:
    """``loss(net, batch, device)``: mean of ``(1 + peak_weight * target) * (output - target)^2``."""

    def loss(net: torch.nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        target = batch["target"].to(device)
        output = first_output(net(batch["image"].to(device))).float()
        return ((1.0 + peak_weight * target) * (output - target) ** 2).mean()

    return loss


def offset_loss(net: torch.nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
    """Mean squared error of the predicted landmark offsets (half patch sizes)."""
    return torch.nn.functional.mse_loss(net(batch["image"].to(device)).float(), batch["target"].to(device))


def radial_errors_mm(net: torch.nn.Module, arch: Mapping[str, Any], cases: Sequence[LandmarkCase], settings: Mapping[str, Any], overlap: float, batch_size: int, device: torch.device) -> np.ndarray:
    """Radial errors ``(cases, L)`` in mm of ``net`` on preprocessed ``cases``."""
    errors = []
    for case in cases:
        points, _ = locate_landmarks([net], arch, np.asarray(case.image), settings, overlap, batch_size, device)
        errors.append(np.linalg.norm(index_to_world(points, case.geometry) - index_to_world(case.points, case.geometry), axis=1))
    return np.array(errors).reshape(len(cases), -1)


def load_points(config: Mapping[str, Any], cases: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(landmark names, {case: world points (L, dim) in mm})`` from the configured table."""
    path, declared = landmark_settings(config)
    table = read_landmarks(path, config["dataset"]["dimensions"], declared)
    names = landmark_names(table, declared)
    return names, {c: case_points(table, c, names, f"landmark table {path}") for c in cases}


def train_landmarks_fold(
    name: str, experiment: Mapping[str, Any], plan: Mapping[str, Any], split: Mapping[str, Sequence[str]], preprocessed: str | os.PathLike[str],
    fold_dir: str | os.PathLike[str], config: Mapping[str, Any], device: torch.device | None = None,
) -> pd.DataFrame:
    """Train one fold of a landmark experiment; resume from ``fold_dir/work/resume.pt`` when it exists.

    Args:
        experiment: the experiment's validated config (model, landmarks, training, init_from).
        plan: the plan (patch and batch size, channels, dimensions).
        split: ``{"train": [case ids], "val": [case ids]}``.
        config: the whole config (``dataset.landmarks`` names the landmark table).
    Returns:
        The training log, one row per epoch (``val_mre_mm`` / ``val_median_mm`` when validated).
    """
    settings, lm = experiment["training"], experiment["landmarks"]
    names, points = load_points(config, list(split["train"]) + list(split["val"]))
    arch = landmark_architecture(experiment, plan, names)
    device = device or select_device()
    torch.manual_seed(settings["seed"])
    net = build_landmark_network(arch).to(device)
    if experiment.get("init_from"):
        from pipeline.denoise.pretrain import load_pretrained

        load_pretrained(net, experiment, fold_dir)
    augment = intensity_augmentation(settings["augmentation"], arch["spatial_dims"])
    batches = LandmarkBatches(
        open_cases(preprocessed, split["train"], points), plan["patch_size"], plan["batch_size"], lm["method"], lm["sigma_mm"],
        lm["landmark_fraction"], settings["seed"], augment,
    )
    val_cases = open_cases(preprocessed, split["val"], points)
    overlap = experiment["inference"]["overlap"]

    def validate(model: torch.nn.Module) -> dict[str, float]:
        errors = radial_errors_mm(model, arch, val_cases, lm, overlap, plan["batch_size"], device)
        if errors.size == 0:
            return {"mre_mm": float("nan"), "median_mm": float("nan"), "score": -float("inf")}
        return {"mre_mm": float(errors.mean()), "median_mm": float(np.median(errors)), "score": -float(errors.mean())}

    loss = heatmap_loss(lm["peak_weight"]) if lm["method"] == "heatmap" else offset_loss
    log.info("%s: %s landmarks %s, %d training and %d validation cases", name, lm["method"], names, len(split["train"]), len(split["val"]))
    return run_training(name, fold_dir, net, arch, settings, batches, loss, validate, {"plan": dict(plan), "experiment": dict(experiment)}, device)
