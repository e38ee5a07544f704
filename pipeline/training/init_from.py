"""Initialise a network from another experiment's checkpoint (``init_from``, ``init_part``).

Tensors are matched by name and shape: ``init_part: all`` takes every tensor that fits (an
output head whose channel count differs is left as built), ``encoder`` only those of the
encoder (names starting with ``encoder.`` - U-Net, SegNet - or ``backbone.`` - DeepLabV3+).
The source is ``<models root>/<init_from>/fold_<k>/best.pt`` for the lowest trained fold
``k`` (the workflow's denoising experiments train on every training image in each fold).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import PipelineError, SettingError
from pipeline.training.checkpoint import check_finite, load_checkpoint

log = logging.getLogger(__name__)

ENCODER_PREFIXES = ("encoder.", "backbone.")
PARTS = ("encoder", "all")


def pretrained_checkpoint(models_root: str | os.PathLike[str], source: str) -> Path:
    """``best.pt`` of the lowest fold of experiment ``source`` under ``models_root``.

    Raises:
        PipelineError: the experiment has no trained fold there.
    """
    folder = Path(models_root) / source
    folds = sorted((int(m.group(1)), p) for p in folder.glob("fold_*/best.pt") if (m := re.fullmatch(r"fold_(\d+)", p.parent.name)))
    if not folds:
        raise PipelineError(f"init_from: experiment {source!r} has no trained fold under {folder} (expected fold_<k>/best.pt); train it first")
    return folds[0][1]


def matching_tensors(target: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """The tensors of ``source`` that ``target`` has under the same name and shape (encoder only for ``part="encoder"``)."""
    if part not in PARTS:
        raise SettingError(f"init_part must be one of {list(PARTS)}, got {part!r}")
    return {
        name: tensor
        for name, tensor in source.items()
        if name in target and tuple(target[name].shape) == tuple(tensor.shape) and (part == "all" or name.startswith(ENCODER_PREFIXES))
    }


def load_matching(net: torch.nn.Module, source: Mapping[str, torch.Tensor], part: str, where: str = "the checkpoint") -> int:
    """Copy the matching tensors of ``source`` into ``net``; return how many were loaded.

    Raises:
        PipelineError: no tensor matched (different architecture or settings).
    """
    state = net.state_dict()
    matched = matching_tensors(state, source, part)
    if not matched:
        raise PipelineError(f"init_from: no tensor of {where} fits this network ({part}); use the same model name and settings in both experiments")
    state.update({k: v.to(state[k].dtype) for k, v in matched.items()})
    net.load_state_dict(state)
    wanted = [k for k in state if part == "all" or k.startswith(ENCODER_PREFIXES)]
    log.info("init_from: loaded %d of %d %s tensors (%d parameters) from %s", len(matched), len(wanted), part, sum(v.numel() for v in matched.values()), where)
    return len(matched)


def load_pretrained(net: torch.nn.Module, experiment: Mapping[str, Any], fold_dir: str | os.PathLike[str]) -> int:
    """Initialise ``net`` from ``experiment["init_from"]`` (``init_part``); return the tensors loaded.

    ``fold_dir`` is ``<models root>/<experiment>/fold_<k>``; the source lies beside it.

    Raises:
        CheckpointError: the source checkpoint cannot be read or holds NaN/infinite weights.
    """
    path = pretrained_checkpoint(Path(fold_dir).parent.parent, experiment["init_from"])
    state = load_checkpoint(path)
    check_finite(state["model"], path)
    return load_matching(net, state["model"], experiment["init_part"], str(path))
