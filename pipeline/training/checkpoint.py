"""Checkpoints: written atomically, read with ``weights_only=True`` (no code runs on load).

Every way a checkpoint file can be broken - missing, a directory, unreadable, empty,
truncated, random bytes, a zip archive of something else, a pickle with a forbidden
global, a valid file that holds no checkpoint, weights of another shape or dtype, NaN
weights - gives a :class:`CheckpointError` that names the file and the problem.
"""

from __future__ import annotations

import os
import pickle
import re
import stat
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import atomic_path
from pipeline.errors import PipelineError

#: Entries every checkpoint holds: the network's weights and what they were built from.
REQUIRED = ("model", "architecture")
#: Entries that, where present, are dicts (prediction and ``init_from`` read into them).
DICTS = ("architecture", "plan", "experiment", "mirror_validation")
#: Lines of torch's messages that say nothing about the file itself.
_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")
_FORBIDDEN = re.compile(r"\bGLOBAL\b|unsupported global|not an allowed global", re.IGNORECASE)
#: How many problems of a state dict a message lists.
_LISTED = 4


class CheckpointError(PipelineError):
    """A checkpoint is missing, truncated, unsafe, or does not fit the model."""


def error_reason(err: BaseException) -> str:
    """The informative line of ``err``'s message, with its type: never empty, never raising."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    try:
        text = str(err)
    except Exception:  # noqa: BLE001 - an exception whose message itself fails
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(_BOILERPLATE)]
    line = lines[0].split(" This is an internal miniz error")[0] if lines else ""
    line = line if len(line) <= 200 else line[:197] + "..."
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(dict(state), tmp)


def _check_readable(p: Path) -> None:
    """Raise :class:`CheckpointError` unless ``p`` is a non-empty regular file this process
    may read."""
    try:
        info = p.stat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {p} does not exist") from None
    except OSError as err:
        raise CheckpointError(f"checkpoint {p} cannot be read: {error_reason(err)}") from err
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"checkpoint {p} is a directory, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"checkpoint {p} is not a regular file")
    if info.st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (0 bytes); expected a checkpoint that training wrote (a torch zip archive)")
    try:
        p.open("rb").close()
    except OSError as err:  # e.g. no read permission
        raise CheckpointError(f"checkpoint {p} cannot be read: {error_reason(err)}") from err


def _size(p: Path) -> str:
    try:
        return f"{p.stat().st_size} bytes"
    except OSError:
        return "size unknown"


def load_checkpoint(path: str | os.PathLike[str], mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain Python values only), on the CPU.

    ``mmap``: map the tensors' storage instead of reading it (to look at the settings of
    a checkpoint without reading its weights); the checks are the same.

    Returns:
        A dict with ``model`` (names to tensors) and ``architecture`` (a dict), and
        whatever else the training stored (``plan``, ``experiment``, ... dicts where present).
    Raises:
        CheckpointError: naming the file and whether it is missing, not a file, unreadable,
            empty, truncated/corrupt, holds objects that are not allowed (a crafted pickle
            cannot run code) or holds no checkpoint.
    """
    p = Path(path)
    _check_readable(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as err:  # noqa: BLE001 - whatever a damaged file makes torch raise
            if mmap:  # read whole, for torch's own reason ("mmap can only be used with ..." says nothing)
                return load_checkpoint(p)
            if isinstance(err, pickle.UnpicklingError) and _FORBIDDEN.search(str(err)):
                raise CheckpointError(
                    f"checkpoint {p} holds objects other than tensors and plain values and was refused (weights_only=True): {error_reason(err)}"
                ) from err
            kind = "a zip archive" if zipfile.is_zipfile(p) else "not a zip archive"
            raise CheckpointError(
                f"checkpoint {p} is truncated or corrupt and cannot be read ({_size(p)}, {kind}; {error_reason(err)}); expected a complete checkpoint that training wrote (a torch zip archive)"
            ) from err
    for warning in caught:  # a file that loads keeps torch's warnings
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    check_structure(state, p)
    return state


def check_structure(state: Any, path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` unless ``state`` looks like a checkpoint: a dict with
    ``model`` (names to tensors) and ``architecture``, the entries of :data:`DICTS` dicts."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint (a dict with {list(REQUIRED)})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}: not a checkpoint of this pipeline (found the entries {sorted(map(str, state))[:10]})")
    weights = state["model"]
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"checkpoint {path}: 'model' is a {type(weights).__name__}, not a state dict of named tensors")
    for name, value in weights.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint {path}: 'model' is not a state dict of named tensors ({name!r} is a {type(value).__name__})")
    for key in DICTS:
        if key in state and not isinstance(state[key], dict):
            raise CheckpointError(f"checkpoint {path}: {key!r} is a {type(state[key]).__name__}, not a dict")


def _listed(problems: list[str]) -> str:
    more = f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
    return "; ".join(problems[:_LISTED]) + more


def state_dict_problems(expected: Mapping[str, torch.Tensor], found: Mapping[str, Any]) -> list[str]:
    """What keeps ``found`` from loading into a model whose state dict is ``expected``:
    missing and unexpected tensors, other shapes and other dtypes."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    problems = [f"missing tensors {missing[:_LISTED]}" + (f" (+{len(missing) - _LISTED})" if len(missing) > _LISTED else "")] if missing else []
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:_LISTED]}" + (f" (+{len(unexpected) - _LISTED})" if len(unexpected) > _LISTED else ""))
    for name, want in expected.items():
        have = found.get(name)
        if not isinstance(have, torch.Tensor):
            continue
        if tuple(have.shape) != tuple(want.shape):
            problems.append(f"{name} has shape {tuple(have.shape)}, the model needs {tuple(want.shape)}")
        elif have.dtype != want.dtype:
            problems.append(f"{name} has dtype {have.dtype}, the model needs {want.dtype}")
    return problems


def check_finite(weights: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` when a floating-point tensor holds NaN or infinity."""
    bad = [k for k, v in weights.items() if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds non-finite weights (NaN or infinity) in {bad[:_LISTED]}"
            + (f" and {len(bad) - _LISTED} more tensors" if len(bad) > _LISTED else "")
            + "; the training diverged or the file was damaged"
        )


def load_model_weights(model: torch.nn.Module, state: Mapping[str, Any], path: str | os.PathLike[str], expected: Mapping[str, Any]) -> None:
    """Load ``state["model"]`` into ``model`` after checking the architecture matches.

    ``expected`` is the architecture description (``model``, ``in_channels``,
    ``num_classes``, ``spatial_dims``) the caller built ``model`` from.

    Raises:
        CheckpointError: another architecture; weights missing, unexpected, of another shape
            or dtype; NaN or infinite weights.
    """
    check_structure(state, path)
    found = state["architecture"]
    for key, value in expected.items():
        have = found.get(key)
        if have == value:
            continue
        if isinstance(have, Mapping) and isinstance(value, Mapping):  # name only the settings that differ
            keys = [k for k in {**value, **have} if have.get(k) != value.get(k)]
            found_, needed = ({k: d.get(k) for k in keys} for d in (have, value))
            raise CheckpointError(
                f"checkpoint {path} was trained with {key} settings {found_}, but this model needs {needed}; the checkpoints of one model must share its architecture"
            )
        raise CheckpointError(f"checkpoint {path} was trained with {key}={have!r}, but this model needs {key}={value!r}")
    weights = state["model"]
    problems = state_dict_problems(model.state_dict(), weights)
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {_listed(problems)}")
    check_finite(weights, path)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {error_reason(err)}") from err
