"""Dice per class during training and validation: label maps on one grid, no geometry."""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.labelmaps import confusion_matrix


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, num_classes: int) -> list[float]:
    """Dice of each foreground class (1..K-1) of two index maps ``(*spatial)`` with values
    0..K-1; NaN where the class is absent from both."""
    confusion = confusion_matrix(np.asarray(reference, dtype=np.int64), np.asarray(prediction, dtype=np.int64), num_classes)
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(0) + confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)
    return [float(d) for d in dice[1:]]
