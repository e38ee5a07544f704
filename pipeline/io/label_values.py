"""Label values as files hold them, and label indices as networks see them.

With a class named ``ignore`` (the highest value), its voxels are unannotated: they keep
the last index, which no network predicts (:func:`trained_classes`), and loss, validation
and metrics leave them out.

A dataset declares its label values (``dataset.labels``, e.g. TotalSegmentator's 0..117 with
gaps, or ``{0: background, 2: liver, 5: tumour}``); inside the pipeline a label map holds
the *index* of its value in the sorted list (``0..K-1``, uint8, or uint16 when K > 255):
preprocessing maps files to indices (:func:`to_label_index`), predictions are written
back with the declared values (:func:`to_label_values`), and evaluation maps both files
to indices again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LUT_MAX_VALUE = 1 << 20  # largest label value remapped with a lookup table
#: The class name that marks voxels without annotation (nnU-Net's convention): left out of
#: the loss, validation and metrics, never predicted; it must be the highest label value.
IGNORE_NAME = "ignore"


def ignore_value(labels: Mapping[Any, Any]) -> int | None:
    """The label value named :data:`IGNORE_NAME` in a ``{value: name}`` mapping, or None."""
    found = [int(k) for k, name in labels.items() if str(name).strip().lower() == IGNORE_NAME]
    return found[0] if found else None


def trained_classes(labels: Mapping[Any, Any]) -> int:
    """Classes a network predicts: the declared ones, background included, less the ignore label
    (whose index is then this number, the last)."""
    return len(labels) - (ignore_value(labels) is not None)


def declared_values(labels: Mapping[Any, Any]) -> np.ndarray:
    """The sorted label values (int64) of a ``{value: name}`` mapping (keys may be strings, as in JSON)."""
    return np.array(sorted(int(k) for k in labels), dtype=np.int64)


def is_consecutive(values: Sequence[int] | np.ndarray) -> bool:
    """True when the values are ``0..K-1`` (indices and values coincide)."""
    return [int(v) for v in values] == list(range(len(values)))


def to_label_values(index: np.ndarray, values: Sequence[int] | np.ndarray) -> np.ndarray:
    """Label indices ``0..K-1`` back to the declared values; same shape, the smallest unsigned
    dtype that holds the largest value (uint8, uint16 or uint32)."""
    values = np.asarray(values, dtype=np.int64)
    top = int(values[-1]) if values.size else 0
    dtype = np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32
    if is_consecutive(values):
        return index.astype(dtype, copy=False)
    return values.astype(dtype)[index]


def case_words(case_id: str) -> str:
    """``case 'c1'`` for messages (``case (no id)`` without one)."""
    return f"case {case_id!r}" if case_id else "case (no id)"


def _as_integer(arr: np.ndarray, role: str, case_id: str) -> np.ndarray:
    """Return ``arr`` as an integer array; floats must hold whole numbers only."""
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            example = arr[bad].flat[0].item()
            raise ValueError(
                f"{case_words(case_id)}: the {role} label map must hold integer label values, found non-integer value {example!r} (dtype {arr.dtype})."
            )
        return arr.astype(np.int64)
    raise ValueError(f"{case_words(case_id)}: the {role} label map must be an integer array, got dtype {arr.dtype}.")


def to_label_index(arr: np.ndarray, values: np.ndarray, role: str, case_id: str) -> np.ndarray:
    """Map label values to indices ``0..K-1`` (uint8, or uint16 when K > 255); same shape as ``arr``.

    Raises ValueError naming the value and the case if ``arr`` holds a value not in ``values``.
    """
    arr = _as_integer(np.asarray(arr), role, case_id)
    k = len(values)
    out_dtype = np.uint8 if k <= 255 else np.uint16
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo < 0 or hi > values[-1]:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"{case_words(case_id)}: the {role} label map holds label value {bad}, which is not in "
            f"the labels {values.tolist()}. Add it to the labels or fix the file."
        )
    if k == values[-1] + 1:  # labels are 0..K-1: values already are indices
        return np.ascontiguousarray(arr, dtype=out_dtype)
    if values[-1] < LUT_MAX_VALUE:
        lut = np.full(int(values[-1]) + 1, k, dtype=out_dtype)  # k marks "not a label"
        lut[values] = np.arange(k, dtype=out_dtype)
        index = lut[arr]
    else:  # huge label values: binary search instead of a lookup table
        pos = np.searchsorted(values, arr).clip(0, k - 1)
        index = np.where(values[pos] == arr, pos, k).astype(out_dtype)
    if (index == k).any():  # only when labels have gaps; names the first offending value
        bad_values = np.unique(arr[index == k])
        raise ValueError(
            f"{case_words(case_id)}: the {role} label map holds label value(s) {bad_values[:10].tolist()}, "
            f"not in the labels {values.tolist()}. Add them to the labels or fix the file."
        )
    return index
