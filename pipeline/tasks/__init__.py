"""The task registry: ``TASKS[name]`` is the :class:`~pipeline.tasks.base.Task` of an
experiment's ``task`` key. Adding a task is one package under ``pipeline/tasks/`` that
defines ``TASK`` and one line here (see ``pipeline/README.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError
from pipeline.tasks.base import Task
from pipeline.tasks.denoise import TASK as DENOISE
from pipeline.tasks.landmarks import TASK as LANDMARKS
from pipeline.tasks.segmentation import TASK as SEGMENTATION

TASKS: dict[str, Task] = {t.name: t for t in (SEGMENTATION, LANDMARKS, DENOISE)}


def task_of(config: Mapping[str, Any], experiment: str) -> Task:
    """The task of ``experiment`` in the validated ``config``.

    Raises:
        ConfigError: the experiment is not in the config, or its task is unknown.
    """
    experiments = config["experiments"]
    if experiment not in experiments:
        raise ConfigError(f"experiment {experiment!r} is not in the config (experiments: {list(experiments)})")
    name = experiments[experiment]["task"]
    if name not in TASKS:
        raise ConfigError(f"experiments.{experiment}.task: {name!r} is not a task; expected one of {list(TASKS)}")
    return TASKS[name]


def train_fold(
    config: Mapping[str, Any], experiment: str, plan: Mapping[str, Any], split: Mapping[str, Any], preprocessed: Any, fold_dir: Any, device: Any = None
) -> Any:
    """Train one fold of ``experiment`` with its task's training (resumable); return the log.

    ``split``: ``{"train": [case ids], "val": [case ids]}``; ``preprocessed``: the folder
    of preprocessed case folders; ``fold_dir``: where ``best.pt``, ``last.pt`` and
    ``log.tsv`` go (``work/`` beside them while training).
    """
    from pipeline.training.task import train_task

    spec = task_of(config, experiment).training(config, experiment, plan, split, preprocessed)
    return train_task(experiment, spec, config["experiments"][experiment], plan, fold_dir, device)
