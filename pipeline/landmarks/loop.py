"""The training loop of the dense-regression tasks (landmarks, denoising): the shared loop of
:mod:`pipeline.training.loop` with the task's batches, loss and validation.

Same files and guarantees as segmentation: work files in ``<fold dir>/work/`` (``resume.pt``,
``best.pt``, ``log.tsv``), a rerun resumes from the last checkpoint with the same result as an
uninterrupted run, SIGTERM/SIGUSR1 save a checkpoint first; on completion ``last.pt``,
``best.pt`` and ``log.tsv`` land in the fold folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.errors import PipelineError
from pipeline.training.distributed import Context
from pipeline.training.loop import finish_fold, train_loop

#: ``loss(network, batch, device) -> scalar``; ``validate(network) -> {metric: value, "score": higher is better}``.
LossFn = Callable[[torch.nn.Module, dict, torch.device], torch.Tensor]
ValidateFn = Callable[[torch.nn.Module], dict[str, float]]


def run_training(
    name: str, fold_dir: str | os.PathLike[str], net: torch.nn.Module, arch: Mapping[str, Any], settings: Mapping[str, Any],
    batches: torch.utils.data.Dataset, loss_fn: LossFn, validate: ValidateFn, extra: Mapping[str, Any], device: torch.device,
) -> pd.DataFrame:
    """Train ``net`` (already on ``device``) for ``epochs * iterations_per_epoch`` batches.

    Args:
        arch: architecture description stored in every checkpoint and checked on resume.
        settings: the experiment's ``training`` section.
        batches: item ``i`` is the batch of iteration ``i`` (a dict of tensors).
        extra: more entries of every checkpoint (plan, experiment settings).
    Returns:
        The training log, one row per epoch (``train_loss``, ``learning_rate``, ``seconds``,
        ``val_*`` on validated epochs); ``best.pt`` stores the score as ``val_score``.
    Raises:
        TrainingInterrupted: after SIGTERM/SIGUSR1, once the checkpoint is written.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise PipelineError(f"training of {name}: data-parallel training (--processes > 1) supports task segmentation only; use one process")

    def columns(model: torch.nn.Module) -> tuple[dict[str, float], float]:
        metrics = validate(model)
        return {f"val_{k}": v for k, v in metrics.items()}, float(metrics["score"])

    fold_dir = Path(fold_dir)
    rows = train_loop(name, fold_dir, net, net, arch, settings, batches, lambda model, batch: loss_fn(model, batch, device), columns, extra, "val_score", device, Context(device=device))
    finish_fold(fold_dir)
    return pd.DataFrame(rows)
