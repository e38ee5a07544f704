"""What a task gives the training engine, and the one driver that trains a fold of any task.

A task describes its training as a :class:`TaskTraining`: the architecture (stored in every
checkpoint), how to build the network, its batches, its loss and its validation score. The
driver :func:`train_task` does the rest for every task alike: one trainer per fold at a
time, seeding, the device, starting from another experiment's weights (``init_from``),
data-parallel processes where the task allows them, torch.compile, the resumable loop, and
turning the work files into outputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from pipeline.errors import PipelineError
from pipeline.runtime import maybe_compile, memory_format, select_device
from pipeline.training import distributed
from pipeline.training.lock import fold_lock
from pipeline.training.loop import finish_fold, train_loop

log = logging.getLogger(__name__)


class TaskTraining(Protocol):
    """A task's training of one fold.

    Attributes:
        architecture: what a checkpoint must match to be loaded (``model``, ``spatial_dims``,
            ``in_channels``, ``num_classes`` and task keys); stored in every checkpoint.
        score_key: the name under which ``best.pt`` stores the validation score.
        data_parallel: whether the task can train with several processes (DDP).
    """

    architecture: dict[str, Any]
    score_key: str
    data_parallel: bool

    def build(self) -> torch.nn.Module:
        """A new network for :attr:`architecture` (weights from the global torch RNG)."""

    def batches(self, rank: int) -> torch.utils.data.Dataset:
        """Item ``i`` is the batch of iteration ``i`` for data-parallel ``rank`` (seeded)."""

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """The scalar loss of one batch (moving it to ``device``)."""

    def validate(self, net: torch.nn.Module, device: torch.device) -> tuple[dict[str, float], float]:
        """``(log columns, score)`` on the fold's validation cases; a higher score is better."""

    def finish(self, best: Path, device: torch.device) -> None:
        """After training, before the outputs appear: e.g. add measurements to ``best.pt``."""


class FoldTraining:
    """Base of the tasks' :class:`TaskTraining` classes: what every fold's training starts
    from, kept as attributes (``config``, ``name``, ``experiment``, ``settings`` - its
    ``training`` section - ``plan``, ``split``, ``preprocessed``); a subclass sets up the
    rest in :meth:`setup` and defines ``architecture``, ``build``, ``batches``, ``loss`` and
    ``validate``."""

    score_key = "val_score"
    data_parallel = False
    architecture: dict[str, Any]

    def __init__(self, config: Mapping[str, Any], name: str, plan: Mapping[str, Any], split: Mapping[str, Any], preprocessed: str | os.PathLike[str]) -> None:
        self.config, self.name, self.plan, self.split = config, name, plan, split
        self.preprocessed = Path(preprocessed)
        self.experiment = config["experiments"][name]
        self.settings = self.experiment["training"]
        self.setup()

    def setup(self) -> None:
        """The task's own set-up (architecture, cases, loss)."""

    def finish(self, best: Path, device: torch.device) -> None:
        """Nothing to add to ``best.pt`` unless the task says so."""


def train_task(
    name: str, spec: TaskTraining, experiment: Mapping[str, Any], plan: Mapping[str, Any], fold_dir: str | os.PathLike[str], device: torch.device | None = None
) -> pd.DataFrame:
    """Train one fold of ``experiment`` as ``spec`` says; resume from ``fold_dir/work/resume.pt``.

    Only one process trains a fold at a time (``fold_dir/work/train.lock``, see
    :mod:`pipeline.training.lock`): another waits for it, and a fold that is finished when
    the lock is free is not trained again (its log is returned).

    Args:
        name: the experiment's name, for messages.
        experiment: its validated settings (``training``, ``init_from``, ``init_part``, ...).
        plan: the plan, stored in every checkpoint with the experiment's settings.
    Returns:
        The training log (one row per epoch). Afterwards ``fold_dir`` holds ``best.pt``,
        ``last.pt`` and ``log.tsv`` (on the main process).
    Raises:
        TrainingInterrupted: after SIGTERM/SIGUSR1, once the checkpoint is written.
        TrainingDiverged: the loss became NaN or infinite.
    """
    from pipeline.training.init_from import load_pretrained

    settings = experiment["training"]
    fold_dir = Path(fold_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not spec.data_parallel:
        raise PipelineError(f"training of {name}: data-parallel training (--processes > 1) supports task segmentation only; use one process")
    context = distributed.setup(device or select_device())
    device = context.device
    # One trainer per fold: a second one waits here, and does not train a finished fold again.
    with fold_lock(fold_dir, f"training of {name} {fold_dir.name}", context) as finished:
        if finished:
            distributed.teardown(context)
            return pd.read_csv(fold_dir / "log.tsv", sep="\t")
        torch.manual_seed(settings["seed"])
        net = spec.build().to(device, memory_format=memory_format(spec.architecture["spatial_dims"], device))
        if experiment.get("init_from"):
            load_pretrained(net, experiment, fold_dir)
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None) if context.distributed else net
        model = maybe_compile(model, settings["compile"])
        extra = {"plan": dict(plan), "experiment": dict(experiment)}
        rows = train_loop(
            name,
            fold_dir,
            net,
            model,
            spec.architecture,
            settings,
            spec.batches(context.rank),
            lambda m, batch: spec.loss(m, batch, device),
            lambda n: spec.validate(n, device),
            extra,
            spec.score_key,
            device,
            context,
        )
        if context.is_main:
            spec.finish(fold_dir / "work" / "best.pt", device)
            finish_fold(fold_dir)
    return pd.DataFrame(rows)
