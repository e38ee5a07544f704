"""Preprocess one case: crop to the nonzero box, normalise, resample to the plan's spacing.

Output folder ``results/preprocessed/<case>/``:
- ``image.npy``: float32 ``(C, Z, Y, X)`` (or ``(C, Y, X)``), uncompressed so training can
  memory-map it;
- ``label.npy``: uint8 ``(Z, Y, X)``, when the case has a label;
- ``properties.json``: the original geometry, the crop box and the grids, i.e. everything
  :func:`pipeline.preprocessing.inverse.restore_labels` needs to undo the steps, plus up to
  :data:`LOCATIONS_PER_CLASS` voxel coordinates per class for foreground sampling.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_path, write_json
from pipeline.io.check import load_case
from pipeline.io.images import Geometry
from pipeline.preprocessing.resample import grid_for_spacing, resample_array, resample_label

LOCATIONS_PER_CLASS = 1000


def nonzero_box(image: np.ndarray) -> tuple[tuple[int, int], ...]:
    """``((start, stop), ...)`` per spatial axis of the voxels nonzero in any channel.

    Args:
        image: ``(C, *spatial)``. An all-zero image gives the full extent.
    """
    mask = (image != 0).any(axis=0)
    if not mask.any():
        return tuple((0, n) for n in mask.shape)
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def cropped_geometry(geometry: Geometry, box: Sequence[tuple[int, int]]) -> Geometry:
    """Geometry of the sub-grid ``box`` (numpy order) of ``geometry``."""
    start_itk = [int(b[0]) for b in reversed(box)]
    direction = np.asarray(geometry.direction).reshape(geometry.ndim, geometry.ndim)
    origin = np.asarray(geometry.origin) + direction @ (np.asarray(start_itk) * np.asarray(geometry.spacing))
    size = tuple(int(b[1] - b[0]) for b in reversed(box))
    return Geometry(size=size, spacing=geometry.spacing, origin=tuple(origin.tolist()), direction=geometry.direction)


def normalise(channel: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """Normalise one channel (float32, any layout) as the plan says.

    ``ct``: clip to the dataset's foreground 0.5/99.5 percentiles, z-score with dataset
    mean/std. ``zscore_nonzero``: z-score with this image's statistics inside its nonzero
    voxels; voxels outside stay 0.
    """
    if settings["scheme"] == "ct":
        low, high = settings["clip"]
        return ((np.clip(channel, low, high) - settings["mean"]) / max(settings["std"], 1e-8)).astype(np.float32)
    mask = channel != 0
    if not mask.any():
        return np.zeros_like(channel, dtype=np.float32)
    values = channel[mask]
    out = np.zeros_like(channel, dtype=np.float32)
    out[mask] = (values - values.mean()) / max(float(values.std()), 1e-8)
    return out


def class_locations(label: np.ndarray, num_classes: int, seed: int) -> dict[str, list[list[int]]]:
    """Up to :data:`LOCATIONS_PER_CLASS` seeded voxel coordinates (numpy order) per foreground class."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(1, num_classes):
        where = np.argwhere(label == k)
        if len(where) > LOCATIONS_PER_CLASS:
            where = where[rng.choice(len(where), LOCATIONS_PER_CLASS, replace=False)]
        out[str(k)] = where.tolist()
    return out


def preprocess_case(case: str, channel_paths: Sequence[str], label_path: str | None, plan: Mapping[str, Any], out_dir: str | os.PathLike[str], tolerance: float = 1e-3) -> dict[str, Any]:
    """Preprocess a case into ``out_dir`` (see the module docstring); return its properties."""
    image, label, geometry = load_case(case, channel_paths, label_path, plan["dimensions"], tolerance)
    settings = plan["preprocessing"]
    box = nonzero_box(image) if settings["crop_to_nonzero"] else tuple((0, n) for n in image.shape[1:])
    crop = (slice(None), *(slice(a, b) for a, b in box))
    image = image[crop]
    cropped = cropped_geometry(geometry, box)
    image = np.stack([normalise(c, plan["normalisation"][name]) for c, name in zip(image, plan["channels"])])
    target = grid_for_spacing(cropped, plan["target_spacing"])
    image = np.stack([resample_array(c, cropped, target, settings["image_interpolation"]) for c in image]).astype(np.float32)
    num_classes = len(plan["labels"])
    properties: dict[str, Any] = {
        "case": case,
        "original_geometry": geometry.to_dict(),
        "crop_box": [list(b) for b in box],
        "cropped_geometry": cropped.to_dict(),
        "resampled_geometry": target.to_dict(),
        "shape": list(image.shape[1:]),
        "has_label": label is not None,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if label is not None:
        label = resample_label(label[crop[1:]], cropped, target, settings["label_interpolation"], num_classes).astype(np.uint8)
        properties["class_locations"] = class_locations(label, num_classes, seed=len(case))
        properties["class_counts"] = np.bincount(label.ravel(), minlength=num_classes).tolist()
        with atomic_path(out / "label.npy", suffix=".npy") as tmp:
            np.save(tmp, label)
    with atomic_path(out / "image.npy", suffix=".npy") as tmp:
        np.save(tmp, image)
    write_json(out / "properties.json", properties)
    return properties


def load_properties(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``properties.json`` of a preprocessed case."""
    with open(Path(folder) / "properties.json", encoding="utf-8") as handle:
        return json.load(handle)
