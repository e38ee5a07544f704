"""Undo preprocessing: put a prediction back onto the case's original grid."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.io.images import Geometry
from pipeline.preprocessing.resample import argmax_resampled, resample_array


def restore_labels(labels: np.ndarray, properties: Mapping[str, Any]) -> np.ndarray:
    """Labels on the preprocessed grid -> labels on the original grid (numpy order).

    Nearest-neighbour back onto the cropped grid, then pasted into the full extent with
    background (0) outside the crop box. Exact when no resampling happened.
    """
    resampled = Geometry.from_dict(properties["resampled_geometry"])
    cropped = Geometry.from_dict(properties["cropped_geometry"])
    back = resample_array(labels.astype(np.uint8), resampled, cropped, "nearest")
    return _paste(back, properties)


def restore_probabilities(probabilities: Iterable[np.ndarray], properties: Mapping[str, Any]) -> np.ndarray:
    """Per-class probabilities on the preprocessed grid -> argmax labels on the original grid.

    Each class is resampled linearly onto the cropped grid one at a time (memory: two
    float32 maps of the cropped size), which is smoother than resampling the argmax.
    """
    resampled = Geometry.from_dict(properties["resampled_geometry"])
    cropped = Geometry.from_dict(properties["cropped_geometry"])
    return _paste(argmax_resampled(probabilities, resampled, cropped), properties)


def restore_regions(probabilities: Iterable[np.ndarray], properties: Mapping[str, Any], values: Sequence[int]) -> np.ndarray:
    """Per-region sigmoid probabilities on the preprocessed grid, outer region first -> label
    values on the original grid (numpy order): each region is resampled linearly onto the
    cropped grid, thresholded at 0.5 and painted with its value (``values``), inner regions
    over outer ones; 0 elsewhere. Memory: two float32 maps of the cropped size."""
    resampled = Geometry.from_dict(properties["resampled_geometry"])
    cropped = Geometry.from_dict(properties["cropped_geometry"])
    out = np.zeros(cropped.shape_numpy, dtype=np.uint8 if max(values) <= 0xFF else np.uint16)
    for probability, value in zip(probabilities, values):
        out[resample_array(probability, resampled, cropped, "linear") > 0.5] = value
    return _paste(out, properties)


def _paste(cropped_labels: np.ndarray, properties: Mapping[str, Any]) -> np.ndarray:
    original = Geometry.from_dict(properties["original_geometry"])
    full = np.zeros(original.shape_numpy, dtype=cropped_labels.dtype)
    full[tuple(slice(a, b) for a, b in properties["crop_box"])] = cropped_labels
    return full
