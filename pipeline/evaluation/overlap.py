"""Overlap metrics of one class from its confusion counts (voxel counts, no geometry)."""

from __future__ import annotations

import math


def _ratio(num: float, den: float, both_empty: bool, empty_both_value: float) -> float:
    if den > 0:
        return num / den
    return empty_both_value if both_empty else 0.0


def overlap_metrics(tp: int, fp: int, fn: int, tn: int, empty_both: str) -> dict[str, float]:
    """Dice, IoU, precision, recall and accuracy of one class (one-vs-rest).

    Args:
        tp, fp, fn, tn: voxel counts (true/false positives, false/true negatives).
        empty_both: ``Conventions.empty_both``; the value of Dice/IoU/precision/recall when the
            class is absent from both masks ("one" -> 1.0, "nan" -> NaN).

    When only one mask is empty the undefined ratio is 0.0, never NaN, so the failure stays
    visible: precision is 0.0 for a missed class (nothing predicted), recall is 0.0 for a
    false-positive class (nothing in the reference). Dice and IoU are 0.0 by their formula.
    Accuracy, ``(tp + tn) / N``, is always defined.
    """
    both_empty = tp + fp + fn == 0
    value = 1.0 if empty_both == "one" else math.nan
    total = tp + fp + fn + tn
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty, value),
        "iou": _ratio(tp, tp + fp + fn, both_empty, value),
        "precision": _ratio(tp, tp + fp, both_empty, value),
        "recall": _ratio(tp, tp + fn, both_empty, value),
        "accuracy": (tp + tn) / total if total else math.nan,
    }
