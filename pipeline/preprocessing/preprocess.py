"""Preprocess one case: crop to the nonzero box, normalise, resample to the plan's spacing.

Training, test and new images all go through :func:`preprocess_case` (the normalisation is
:func:`pipeline.preprocessing.normalisation.normalise`), so prediction sees exactly the
values training saw.

Output folder ``results/preprocessed/<case>/``:
- ``image.npy``: float32 ``(C, Z, Y, X)`` (or ``(C, Y, X)``), uncompressed so training can
  memory-map it;
- ``label.npy``: uint8 ``(Z, Y, X)`` (uint16 beyond 255 classes) of label *indices*
  ``0..K-1`` into the declared values (:mod:`pipeline.io.label_values`), when the case has a label;
- ``properties.json``: the original geometry, the crop box and the grids, i.e. everything
  :func:`pipeline.preprocessing.inverse.restore_labels` needs to undo the steps, plus up to
  :data:`LOCATIONS_PER_CLASS` voxel coordinates per class for foreground sampling.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_path, write_json
from pipeline.io.check import class_voxel_counts, load_case
from pipeline.io.images import Geometry
from pipeline.io.label_values import declared_values, trained_classes
from pipeline.preprocessing.normalisation import normalise
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


def preprocess_case(
    case: str, channel_paths: Sequence[str], label_path: str | None, plan: Mapping[str, Any], out_dir: str | os.PathLike[str], tolerance: float = 1e-3
) -> dict[str, Any]:
    """Preprocess a case into ``out_dir`` (see the module docstring); return its properties."""
    image, label, geometry = load_case(case, channel_paths, label_path, plan["dimensions"], tolerance, declared_values(plan["labels"]))
    settings = plan["preprocessing"]
    coarse = settings.get("coarse_axis_interpolation")  # plans written before this key: all axes together
    box = nonzero_box(image) if settings["crop_to_nonzero"] else tuple((0, n) for n in image.shape[1:])
    crop = (slice(None), *(slice(a, b) for a, b in box))
    cropped = cropped_geometry(geometry, box)
    target = grid_for_spacing(cropped, plan["target_spacing"])
    # Channel by channel, so that memory holds the input, one channel in work and the output.
    resampled = np.empty((image.shape[0], *target.shape_numpy), dtype=np.float32)
    for index, name in enumerate(plan["channels"]):
        channel = normalise(image[index][crop[1:]], plan["normalisation"][name])
        resampled[index] = resample_array(channel, cropped, target, settings["image_interpolation"], coarse=coarse)
        del channel
    del image
    image = resampled
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
        label_coarse = settings.get("label_coarse_axis_interpolation", coarse)  # older plans: as the image
        label = resample_label(label[crop[1:]], cropped, target, settings["label_interpolation"], num_classes, coarse=label_coarse).astype(
            np.uint8 if num_classes <= 255 else np.uint16, copy=False
        )
        properties["class_locations"] = class_locations(label, trained_classes(plan["labels"]), seed=len(case))  # never the ignore label
        properties["class_counts"] = np.pad(class_voxel_counts(label), (0, num_classes))[:num_classes].tolist()
        with atomic_path(out / "label.npy", suffix=".npy") as tmp:
            np.save(tmp, label)
    with atomic_path(out / "image.npy", suffix=".npy") as tmp:
        np.save(tmp, image)
    write_json(out / "properties.json", properties)
    return properties
