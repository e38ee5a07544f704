"""Checks and compaction of integer label maps, and the one-pass confusion matrix.

A label map is an integer array (2D or 3D, any axis order) whose voxel values are label
values from a ``labels`` mapping such as ``{0: "background", 1: "gray_matter"}``. Internally
values are replaced by their *index* in the sorted label list (``0..K-1``) in a uint8/uint16
array, so that one ``np.bincount`` over ``ref_index * K + pred_index`` yields all counts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.io.label_values import case_words as _case
from pipeline.io.label_values import to_label_index

__all__ = ["check_labels", "check_pair", "confusion_matrix", "to_label_index"]

logger = logging.getLogger(__name__)

CHUNK_VOXELS = 1 << 23  # voxels per bincount slab: keeps the int64 temporaries at 64 MiB


def check_labels(labels: Mapping[int, str]) -> tuple[np.ndarray, list[str]]:
    """Validate a label mapping and return (sorted label values, class names), background included.

    Label 0 is background and is added as ``"background"`` when the mapping does not name it.
    """
    if not isinstance(labels, Mapping) or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty mapping like {{0: 'background', 1: 'tumour'}}, got {labels!r}.")
    table: dict[int, str] = {}
    for key, name in labels.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(f"label values must be integers >= 0, got {key!r} (for class {name!r}).")
        if not isinstance(name, str) or not name:
            raise ValueError(f"class names must be non-empty strings, got {name!r} for label {key}.")
        table[int(key)] = name
    table.setdefault(0, "background")
    names = list(table.values())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"class names must be unique, got {duplicates} more than once in {table}.")
    values = np.array(sorted(table), dtype=np.int64)
    return values, [table[int(v)] for v in values]


def confusion_matrix(ref_index: np.ndarray, pred_index: np.ndarray, k: int) -> np.ndarray:
    """Counts ``C[i, j]`` of voxels with reference index ``i`` and predicted index ``j``; shape (K, K), int64.

    One pass of ``np.bincount`` over ``ref * K + pred``, in slabs of ``CHUNK_VOXELS`` voxels so
    the temporaries stay small for 512x512x200 volumes.
    """
    ref_flat = ref_index.reshape(-1)
    pred_flat = pred_index.reshape(-1)
    counts = np.zeros(k * k, dtype=np.int64)
    for start in range(0, ref_flat.size, CHUNK_VOXELS):
        stop = start + CHUNK_VOXELS
        code = ref_flat[start:stop].astype(np.intp) * k
        code += pred_flat[start:stop]
        counts += np.bincount(code, minlength=k * k)
    return counts.reshape(k, k)


def check_pair(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], case_id: str) -> np.ndarray:
    """Validate shapes and spacing of a reference/prediction pair; return spacing as float64 (mm)."""
    if reference.shape != prediction.shape:
        raise ValueError(
            f"{_case(case_id)}: reference and prediction must have the same shape, got {reference.shape} (reference) and {prediction.shape} (prediction)."
        )
    if reference.ndim not in (2, 3):
        raise ValueError(f"{_case(case_id)}: expected a 2D or 3D label map, got shape {reference.shape}.")
    try:
        sp = np.asarray(spacing, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{_case(case_id)}: spacing must be numbers in mm, got {spacing!r}.") from err
    if sp.size != reference.ndim or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(
            f"{_case(case_id)}: spacing must be {reference.ndim} positive numbers in mm in the array's "
            f"axis order (shape {reference.shape}), got {list(np.atleast_1d(spacing))}."
        )
    return sp
