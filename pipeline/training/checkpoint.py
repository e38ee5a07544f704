"""Checkpoints: written atomically, read with ``weights_only=True`` (no code runs on load)."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import atomic_path
from pipeline.errors import PipelineError


class CheckpointError(PipelineError):
    """A checkpoint is missing, truncated, unsafe, or does not fit the model."""


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain Python values only), on the CPU.

    Raises:
        CheckpointError: naming the file and whether it is missing, truncated/corrupt, or
            holds objects that are not allowed (a crafted pickle cannot run code).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"checkpoint {p} holds objects other than tensors and plain values and was refused (weights_only=True): {str(err).splitlines()[0]}") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"checkpoint {p} is truncated or corrupt and cannot be read: {str(err).splitlines()[0]}") from err


def load_model_weights(model: torch.nn.Module, state: Mapping[str, Any], path: str | os.PathLike[str], expected: Mapping[str, Any]) -> None:
    """Load ``state["model"]`` into ``model`` after checking the architecture matches.

    ``expected`` is the architecture description (``model``, ``in_channels``,
    ``num_classes``, ``spatial_dims``) the caller built ``model`` from.
    """
    found = state.get("architecture", {})
    for key, value in expected.items():
        if found.get(key) != value:
            raise CheckpointError(f"checkpoint {path} was trained with {key}={found.get(key)!r}, but this model needs {key}={value!r}")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {str(err).splitlines()[0]}") from err
