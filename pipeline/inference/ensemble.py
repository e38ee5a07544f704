"""Fold ensembles: the checkpoints of a model folder, loaded once into networks for any task."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import PipelineError
from pipeline.runtime import inference_dtype, maybe_compile, memory_format, select_device
from pipeline.training.checkpoint import CheckpointError, error_reason, load_checkpoint, load_model_weights

log = logging.getLogger(__name__)


def fold_checkpoints(model_dir: str | os.PathLike[str], folds: Sequence[int] | None = None) -> list[Path]:
    """``fold_<k>/best.pt`` files of a model folder (all folds, or the given ones).

    Raises:
        PipelineError: a requested fold is missing, or the folder holds none.
    """
    root = Path(model_dir)
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise PipelineError(
            f"model folder {root} {problem} (looked for {root.resolve()}); expected a folder with fold_<k>/best.pt, e.g. results/models/<experiment>"
        )
    trained = sorted((p for p in root.glob("fold_*/best.pt") if re.fullmatch(r"fold_\d+", p.parent.name)), key=lambda p: int(p.parent.name.split("_")[1]))
    if folds is None:
        found = trained
    else:
        found = [root / f"fold_{k}" / "best.pt" for k in folds]
        missing = [str(p) for p in found if not p.exists()]
        if missing:
            have = [int(p.parent.name.split("_")[1]) for p in trained]
            raise PipelineError(f"model folder {root} lacks the checkpoint(s) {missing}; it holds the trained fold(s) {have}: choose among them")
    if not found:
        entries = sorted(p.name for p in root.iterdir())[:5]
        raise PipelineError(f"model folder {root} holds no fold_<k>/best.pt (found {entries}); train the experiment first")
    return found


def load_models(
    checkpoints: Sequence[str | os.PathLike[str]],
    build: Callable[[Mapping[str, Any]], torch.nn.Module],
    task: str,
    device: torch.device | None = None,
    fast: bool = False,
    compile: bool = False,
) -> tuple[list[torch.nn.Module], dict[str, Any]]:
    """The networks of ``checkpoints`` in eval mode on ``device`` and the first one's state
    without its weights (``architecture``, ``plan``, ``experiment``, measurements).

    Args:
        build: the task's network for an architecture dict.
        task: the task the checkpoints must be of (their ``architecture.task``; checkpoints
            without one are segmentation models).
        fast: channels-last memory on CUDA; ``compile``: wrap in ``torch.compile``.
    Raises:
        CheckpointError: a checkpoint is missing, unreadable, of another task or architecture.
    """
    device = torch.device(device or "cpu")
    models, first = [], None
    for path in checkpoints:
        state = load_checkpoint(path)
        arch = state.get("architecture", {})
        if arch.get("task", "segmentation") != task:
            raise CheckpointError(f"checkpoint {path} is a {arch.get('task', 'segmentation')} model, not a {task} model")
        if first is None:
            first = {k: v for k, v in state.items() if k != "model"}
        try:  # the architecture comes from the file: what it lacks is the file's problem
            net = build(first["architecture"])
            layout = memory_format(first["architecture"]["spatial_dims"], device) if fast else torch.contiguous_format
        except (KeyError, TypeError, ValueError, AttributeError, PipelineError) as err:
            raise CheckpointError(
                f"checkpoint {path}: its architecture {first['architecture']!r} does not describe a network that can be built ({error_reason(err)})"
            ) from err
        load_model_weights(net, state, path, first["architecture"])
        models.append(maybe_compile(net.to(device, memory_format=layout).eval(), compile))
    if first is None:
        raise PipelineError("no checkpoint given to predict with")
    return models, first


@dataclasses.dataclass
class Ensemble:
    """A fold ensemble loaded once: networks in eval mode, the first checkpoint's state
    (without weights), the device and the inference autocast dtype."""

    models: list[torch.nn.Module]
    state: dict[str, Any]
    device: torch.device
    amp: torch.dtype | None

    @classmethod
    def load(
        cls,
        checkpoints: Sequence[str | os.PathLike[str]],
        build: Callable[[Mapping[str, Any]], torch.nn.Module],
        task: str,
        inference: Mapping[str, Any],
        device: torch.device | None = None,
    ) -> Ensemble:
        """Load ``checkpoints`` of ``task`` with the experiment's ``inference`` settings
        (``fast``: channels-last and bf16/fp16 autocast where native; ``compile``)."""
        device = device or select_device()
        models, state = load_models(checkpoints, build, task, device, inference.get("fast", False), inference.get("compile", False))
        if not isinstance(state.get("plan"), dict):
            raise CheckpointError(f"checkpoint {checkpoints[0]} lacks the plan (spacing, patch size, normalisation) that prediction needs")
        return cls(models, state, device, inference_dtype(device, inference.get("fast", False)))


def resolve_mirror(setting: bool | str, validations: Sequence[Mapping[str, float] | None]) -> bool:
    """Whether to mirror: ``setting`` itself, or for ``auto`` whether mirroring raised the
    validation score (``dice_mirrored - dice`` averaged over the folds that measured it;
    no measurement - no mirroring)."""
    if setting != "auto":
        return bool(setting)
    gains = [v["dice_mirrored"] - v["dice"] for v in validations if v]
    return bool(gains) and float(np.mean(gains)) > 0.0


def decide_mirror(setting: bool | str, checkpoints: Sequence[str | os.PathLike[str]]) -> bool:
    """``inference.mirror`` resolved with the validation scores stored in the checkpoints
    (``mirror_validation``, written at the end of training); the decision is logged."""
    if setting != "auto":
        return bool(setting)
    validations = [_mirror_validation(c) for c in checkpoints]
    mirror = resolve_mirror(setting, validations)
    log.info(
        "inference.mirror auto: %s (validation Dice without/with mirroring per fold: %s)",
        "mirroring" if mirror else "not mirroring",
        ", ".join(f"{v['dice']:.4f}/{v['dice_mirrored']:.4f}" if v else "not measured" for v in validations),
    )
    return mirror


def _mirror_validation(path: str | os.PathLike[str]) -> dict[str, float] | None:
    """The ``mirror_validation`` of checkpoint ``path`` (``None`` when not measured).

    Raises:
        CheckpointError: it lacks the Dice without or with mirroring, or they are not numbers.
    """
    found = load_checkpoint(path).get("mirror_validation")
    if found is None:
        return None
    values = {k: found.get(k) for k in ("dice", "dice_mirrored")}
    bad = [k for k, v in values.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise CheckpointError(
            f"checkpoint {path}: mirror_validation lacks numbers for {bad} (found {found!r}); retrain the fold or set inference.mirror to true or false"
        )
    return {**found, **{k: float(v) for k, v in values.items()}}
