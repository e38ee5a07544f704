"""Optimisers and learning-rate schedules from the experiment's ``training`` settings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch


def build_optimizer(parameters: Iterable[torch.nn.Parameter], settings: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (nnU-Net's default) or AdamW."""
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(
            parameters, lr=settings["learning_rate"], momentum=settings["momentum"], nesterov=settings["momentum"] > 0, weight_decay=settings["weight_decay"]
        )
    return torch.optim.AdamW(parameters, lr=settings["learning_rate"], weight_decay=settings["weight_decay"])


def lr_factor(schedule: str, iteration: int, total: int) -> float:
    """Multiplier of the base learning rate at ``iteration`` of ``total``.

    ``poly``: ``(1 - t)^0.9``; ``cosine``: ``0.5 (1 + cos(pi t))``; ``constant``: 1.
    """
    t = min(iteration / max(total, 1), 1.0)
    if schedule == "poly":
        return (1.0 - t) ** 0.9
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(schedule, it, total))
