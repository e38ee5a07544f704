"""Training of a segmentation experiment on one fold: the segmentation side of
:class:`pipeline.training.task.TaskTraining`.

Batches: patches with foreground oversampling and the experiment's augmentation; loss: the
configured (class-weighted) loss; validation: sliding-window Dice per class on the fold's
validation cases (preprocessed grid). With ``inference.mirror: auto`` the best checkpoint is
also scored with and without mirroring on a bounded share of the validation cases (stored in
``best.pt`` as ``mirror_validation``, with the number of cases used).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError
from pipeline.evaluation.validation import dice_per_class
from pipeline.inference.ensemble import resolve_mirror
from pipeline.inference.sliding_window import sliding_window
from pipeline.io.label_values import ignore_value, trained_classes
from pipeline.io.regions import membership, output_channels, output_names, region_masks
from pipeline.losses import build_loss
from pipeline.models import build_network
from pipeline.models.registry import resolve_auto
from pipeline.preprocessing.case_folder import PreprocessedCase
from pipeline.runtime import amp_dtype, memory_format
from pipeline.training.augment import build_augmentation
from pipeline.training.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from pipeline.training.loop import training_seconds
from pipeline.training.sampling import BatchDataset
from pipeline.training.task import FoldTraining

log = logging.getLogger(__name__)

#: ``inference.mirror: auto`` scores at most this many validation cases (in the split's
#: order) without and with mirroring (``inference.mirror_cases`` where the config has it) ...
MIRROR_CASES = 10
#: ... within this share of the training's own time (``inference.mirror_budget``) ...
MIRROR_BUDGET = 0.1
#: ... but this many seconds at least (a short training still gets a few cases).
MIRROR_MIN_SECONDS = 30.0


def architecture(experiment: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be loaded into a model (name, settings, sizes)."""
    return {
        "model": resolve_auto(experiment["model"], plan),
        "spatial_dims": int(plan["dimensions"]),
        "in_channels": len(plan["channels"]),
        "num_classes": output_channels(plan),
    }


def resolve_class_weights(experiment: Mapping[str, Any], plan: Mapping[str, Any]) -> list[float] | None:
    """The experiment's class weights: the plan's (``auto``), none, or the given list.

    Raises:
        ConfigError: a list with another length than the number of classes.
    """
    weights = experiment["class_weights"]
    num_classes = trained_classes(plan["labels"])
    if plan.get("regions"):
        if isinstance(weights, list):
            raise ConfigError(f"class_weights {weights} do not apply to region training (dataset.regions); set auto or none")
        return None
    if weights == "auto":
        return list(plan["class_weights"])
    if weights == "none":
        return None
    if len(weights) != num_classes:
        names = list(plan["labels"].values())[:num_classes]
        raise ConfigError(f"class_weights has {len(weights)} values, expected one per class ({num_classes}: {names})")
    return list(weights)


def mirror_budget(inference: Mapping[str, Any], available: int, trained_seconds: float) -> tuple[int, float]:
    """How much the ``inference.mirror: auto`` decision may cost: ``(cases, seconds)``.

    At most ``inference.mirror_cases`` (:data:`MIRROR_CASES`) of the ``available``
    validation cases, and a time budget of ``inference.mirror_budget``
    (:data:`MIRROR_BUDGET`) times the training's own ``trained_seconds``, but at least
    :data:`MIRROR_MIN_SECONDS`. Whole cases are scored; the first always is.
    """
    cases = max(1, min(available, int(inference.get("mirror_cases", MIRROR_CASES))))
    return cases, max(float(MIRROR_MIN_SECONDS), float(inference.get("mirror_budget", MIRROR_BUDGET)) * trained_seconds)


def mean_dice(
    models: Sequence[torch.nn.Module],
    cases: Sequence[PreprocessedCase],
    patch: Sequence[int],
    num_classes: int,
    overlap: float,
    mirror: bool,
    batch_size: int,
    device: torch.device,
    amp: torch.dtype | None,
    mirror_axes: Sequence[int] | None = None,
    member: np.ndarray | None = None,
) -> np.ndarray:
    """Sliding-window Dice ``(cases, K - 1)`` of the foreground classes on preprocessed ``cases``;
    voxels labelled ``num_classes`` (the ignore label's index) are left out. With ``member``
    (``(K, R)`` class-in-region, region training) the models have one sigmoid output per
    region and the Dice is ``(cases, R)``, per region (> 0.5)."""
    scores = []
    for case in cases:
        activation = "softmax" if member is None else "sigmoid"
        prob = sliding_window(models, np.asarray(case.image), patch, overlap, mirror, batch_size, device, amp, mirror_axes, activation=activation)
        if member is not None:
            scores.append(region_dice(prob.numpy() > 0.5, region_masks(np.asarray(case.label), member)))
            continue
        predicted, reference = prob.argmax(0).numpy(), np.asarray(case.label)
        unannotated = reference >= num_classes
        if unannotated.any():
            predicted, reference = np.where(unannotated, 0, predicted), np.where(unannotated, 0, reference)
        scores.append(dice_per_class(predicted, reference, num_classes))
    return np.array(scores, dtype=float).reshape(len(cases), num_classes - 1 if member is None else member.shape[1])


def region_dice(predicted: np.ndarray, reference: np.ndarray) -> list[float]:
    """Dice per region of two ``(R, *spatial)`` bool stacks; NaN where a region is empty in both."""
    axes = tuple(range(1, predicted.ndim))
    overlap = (predicted & reference).sum(axes).astype(np.float64)
    total = (predicted.sum(axes) + reference.sum(axes)).astype(np.float64)
    return [float(2 * o / t) if t else math.nan for o, t in zip(overlap, total)]


class SegmentationTraining(FoldTraining):
    """The segmentation task's training of one fold (see :class:`~pipeline.training.task.TaskTraining`)."""

    score_key = "val_dice_mean"
    data_parallel = True

    def setup(self) -> None:
        experiment, plan, split, preprocessed = self.experiment, self.plan, self.split, self.preprocessed
        self.architecture = architecture(experiment, plan)
        self.names = output_names(plan)[0 if plan.get("regions") else 1 :]  # what the validation scores
        self.member = membership(plan["regions"], plan["labels"]) if plan.get("regions") else None
        self.classes = trained_classes(plan["labels"])
        self.patch, self.batch_size = plan["patch_size"], plan["batch_size"]
        self.folders = [Path(preprocessed) / c for c in split["train"]]
        self.val_cases = [PreprocessedCase(Path(preprocessed) / c) for c in split["val"]]
        loss_settings = {k: v for k, v in experiment["loss"].items() if k != "name"}
        ignore = trained_classes(plan["labels"]) if ignore_value(plan["labels"]) is not None else None
        self.loss_fn = build_loss(
            experiment["loss"]["name"], resolve_class_weights(experiment, plan), ignore_index=ignore, regions=self.member, **loss_settings
        )

    def build(self) -> torch.nn.Module:
        return build_network(self.architecture)

    def batches(self, rank: int) -> torch.utils.data.Dataset:
        augment = build_augmentation(self.settings["augmentation"], self.architecture["spatial_dims"])
        return BatchDataset(self.folders, self.patch, self.batch_size, self.settings["foreground_fraction"], self.settings["seed"], augment, stream=rank)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        layout = memory_format(self.architecture["spatial_dims"], device)
        x = batch["image"].to(device, non_blocking=True, memory_format=layout)
        return self.loss_fn.to(device)(model(x), batch["label"].to(device, non_blocking=True))

    def validate(self, net: torch.nn.Module, device: torch.device) -> tuple[dict[str, float], float]:
        amp = amp_dtype(device, self.settings["amp"])
        dice = mean_dice([net], self.val_cases, self.patch, self.classes, 0.25, False, self.batch_size, device, amp, member=self.member)
        per_class = np.nanmean(dice, axis=0).tolist() if len(dice) else [math.nan] * len(self.names)
        score = float(np.nanmean(per_class)) if not all(math.isnan(d) for d in per_class) else -math.inf
        return {**{f"val_dice_{c}": d for c, d in zip(self.names, per_class)}, "val_dice_mean": score}, score

    def finish(self, best: Path, device: torch.device) -> None:
        """With ``inference.mirror: auto``: score the best checkpoint without and with mirroring
        on a bounded share of the validation cases (see :func:`mirror_budget`)."""
        inference = self.experiment.get("inference", {})
        if inference.get("mirror") != "auto" or not self.val_cases:
            return
        state = load_checkpoint(best)
        if "mirror_validation" in state:  # a rerun after a kill here does not measure twice
            return
        net = build_network(self.architecture)
        load_model_weights(net, state, best, self.architecture)
        net = net.to(device).eval()
        amp = amp_dtype(device, self.settings["amp"])
        cases, seconds = mirror_budget(inference, len(self.val_cases), training_seconds(best.parent))
        axes = inference.get("mirror_axes")
        fold_dir = best.parent.parent  # best is <fold dir>/work/best.pt
        label = f"{fold_dir.parent.name} {fold_dir.name}"
        log.info(
            "%s: inference.mirror auto: scoring %s without and with mirroring (axes %s) on at most %d of %d validation cases, within %.0f s",
            label,
            best.name,
            "all" if axes is None else list(axes),
            cases,
            len(self.val_cases),
            seconds,
        )
        scores, tic = [], time.perf_counter()
        for case in self.val_cases[:cases]:  # whole cases in the split's order: a prefix
            scores.append(
                [
                    mean_dice([net], [case], self.patch, self.classes, inference["overlap"], m, self.batch_size, device, amp, axes, self.member)[0]
                    for m in (False, True)
                ]
            )
            spent = time.perf_counter() - tic
            log.info(
                "%s: mirror check %d/%d %s: Dice %.4f without, %.4f with mirroring (%.1f s)",
                label,
                len(scores),
                cases,
                case.case,
                _mean(scores[-1][0]),
                _mean(scores[-1][1]),
                spent,
            )
            if spent * (len(scores) + 1) / len(scores) > seconds:  # the next case would overrun the budget
                break
        plain, mirrored = (float(np.nanmean([_mean(s[m]) for s in scores])) for m in (0, 1))
        state["mirror_validation"] = {
            "dice": plain,
            "dice_mirrored": mirrored,
            "cases": len(scores),
            "validation_cases": len(self.val_cases),
            "seconds": round(time.perf_counter() - tic, 3),
        }
        save_checkpoint(best, state)
        log.info(
            "%s: validation Dice %.4f without, %.4f with mirroring on %d of %d cases: mirroring %s on this fold",
            label,
            plain,
            mirrored,
            len(scores),
            len(self.val_cases),
            "helps" if resolve_mirror("auto", [state["mirror_validation"]]) else "does not help",
        )


def _mean(per_class: np.ndarray) -> float:
    """Mean foreground Dice of one case (NaN when no class is present in either)."""
    return float(np.nanmean(per_class)) if not np.all(np.isnan(per_class)) else math.nan
