"""The plan: target spacing, patch and batch size, normalisation, class weights, folds.

Like nnU-Net, the plan is derived from the fingerprint and written as a file a person can
read (``plans.json``); every choice can be overridden in the ``plan:`` config section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.errors import SettingError
from pipeline.io.label_values import trained_classes
from pipeline.preprocessing.network_plan import plan_network
from pipeline.preprocessing.normalisation import channel_normalisation

#: Anisotropy ratio above which the coarse axis gets a low-percentile spacing (nnU-Net).
ANISOTROPY_RATIO = 3.0
#: Patch sizes are multiples of this (the deepest network stride we plan for).
PATCH_MULTIPLE = 16
#: Most voxels a training batch may hold (batch size x patch voxels), 2 x 256^3: a U-Net's first
#: level alone keeps 32 float32 feature maps of every voxel, several times over for the backward
#: pass, so a larger batch needs tens of GB.
MAX_BATCH_VOXELS = 2 * 256**3


def target_spacing(spacings: np.ndarray, shapes: np.ndarray | None = None) -> list[float]:
    """Median spacing per axis; for anisotropic data the coarse axis from the 10th percentile.

    As nnU-Net: the coarse axis gets the 10th percentile of its spacings (not below the
    finer axes' spacing) when its median spacing is more than :data:`ANISOTROPY_RATIO`
    times the others' and, where ``shapes`` are given, its median voxel count is also
    less than 1/:data:`ANISOTROPY_RATIO` of the others' (a coarse axis with many voxels
    keeps the median).

    Args:
        spacings: ``(cases, dims)`` spacings in mm, ITK order.
        shapes: ``(cases, dims)`` voxel counts in numpy order, or None.
    """
    target = np.median(spacings, axis=0)
    coarse = int(np.argmax(target))
    others = np.delete(target, coarse)
    anisotropic = target[coarse] > ANISOTROPY_RATIO * others.max()
    if shapes is not None and anisotropic:
        sizes = np.median(np.asarray(shapes, dtype=float)[:, ::-1], axis=0)  # ITK order
        anisotropic = sizes[coarse] * ANISOTROPY_RATIO < np.delete(sizes, coarse).min()
    if anisotropic:
        target[coarse] = max(np.percentile(spacings[:, coarse], 10), others.max())
    return target.tolist()


def patch_size(median_shape: Sequence[float], voxel_budget: int) -> list[int]:
    """Largest patch (numpy order) not above the median shape and ``voxel_budget`` voxels.

    Axes are rounded up to multiples of :data:`PATCH_MULTIPLE`; the largest axis is shrunk
    by that step until the budget holds.
    """
    patch = [max(PATCH_MULTIPLE, int(np.ceil(s / PATCH_MULTIPLE)) * PATCH_MULTIPLE) for s in median_shape]
    while int(np.prod(patch)) > voxel_budget and max(patch) > PATCH_MULTIPLE:
        axis = int(np.argmax(patch))
        patch[axis] -= PATCH_MULTIPLE
    return patch


def class_weights(totals: Sequence[int], scheme: str) -> list[float]:
    """Class weights from voxel counts per class, normalised to mean 1.

    ``scheme``: ``none`` (all 1), ``inverse_frequency`` (1/f), ``median_frequency``
    (median(f)/f) or ``inverse_sqrt`` (1/sqrt(f)). Classes never seen get the largest
    weight of the seen ones.
    """
    counts = np.asarray(totals, dtype=np.float64)
    if scheme == "none" or counts.sum() == 0:
        return [1.0] * len(counts)
    freq = counts / counts.sum()
    seen = freq > 0
    raw = np.zeros_like(freq)
    if scheme == "inverse_frequency":
        raw[seen] = 1.0 / freq[seen]
    elif scheme == "median_frequency":
        raw[seen] = np.median(freq[seen]) / freq[seen]
    elif scheme == "inverse_sqrt":
        raw[seen] = 1.0 / np.sqrt(freq[seen])
    else:
        raise SettingError(f"unknown class weighting {scheme!r}; expected none, inverse_frequency, median_frequency or inverse_sqrt")
    raw[~seen] = raw[seen].max()
    return (raw / raw.mean()).round(6).tolist()


def kfold_splits(cases: Sequence[str], folds: int, seed: int) -> list[dict[str, list[str]]]:
    """Seeded k-fold split: ``[{"train": [...], "val": [...]}, ...]``, one entry per fold."""
    if len(cases) < folds:
        raise SettingError(f"plan.folds is {folds} but there are only {len(cases)} training cases; use at most {len(cases)} folds")
    order = np.random.default_rng(seed).permutation(sorted(cases))
    parts = np.array_split(order, folds)
    return [{"train": sorted(str(c) for j, p in enumerate(parts) if j != k for c in p), "val": sorted(str(c) for c in parts[k])} for k in range(folds)]


def _voxels(shape: np.ndarray) -> list[int]:
    return [int(round(float(v))) for v in shape]


def check_patch(patch: Sequence[int], batch: int, resampled: np.ndarray, spacing: Sequence[float], multiple: Sequence[int] | None = None) -> None:
    """Reject a patch larger than every image, or a batch of more than :data:`MAX_BATCH_VOXELS`.

    Args:
        resampled: ``(cases, dims)`` image shapes after resampling to ``spacing``, numpy order.
        multiple: per axis, what the largest image is rounded up to for the limit (a derived
            patch padded to the network's total stride); None: :data:`PATCH_MULTIPLE`.
    Raises:
        SettingError: naming ``plan.patch_size``/``batch_size``, the values, the image shapes and
            what would be valid.
    """
    dims = resampled.shape[1]
    axes = "zyx"[3 - dims :] if dims <= 3 else "".join(map(str, range(dims)))
    if len(patch) != dims:
        raise SettingError(
            f"plan.patch_size {list(patch)} has {len(patch)} values, the images have {dims} dimensions: give {dims} ({', '.join(axes)}, numpy order)"
        )
    largest = resampled.max(axis=0)
    steps = [max(PATCH_MULTIPLE, int(m)) for m in multiple] if multiple is not None else [PATCH_MULTIPLE] * dims
    limit = [max(step, int(np.ceil(s / step)) * step) for s, step in zip(largest, steps)]
    too_big = [axes[k] for k in range(dims) if patch[k] > limit[k]]
    if too_big:
        raise SettingError(
            f"plan.patch_size {list(patch)} is larger along {', '.join(too_big)} than every image resampled to {list(spacing)} mm: "
            f"the largest is {_voxels(largest)}, the median {_voxels(np.median(resampled, axis=0))}, the smallest {_voxels(resampled.min(axis=0))} voxels "
            f"({', '.join(axes)}); the excess would be padding only: use at most {limit}, or null to derive the patch"
        )
    voxels = int(batch) * int(np.prod(patch))
    if voxels > MAX_BATCH_VOXELS:
        raise SettingError(
            f"a training batch of {batch} patch(es) of {list(patch)} holds {voxels} voxels, more than {MAX_BATCH_VOXELS} (2 x 256^3; "
            "the network's activations would need tens of GB): lower plan.patch_size or plan.batch_size (or patch_voxels/batch_voxels)"
        )


def _network(settings: Mapping[str, Any], spacing: Sequence[float], resampled: np.ndarray, median_shape: np.ndarray, num_classes: int) -> dict[str, Any]:
    """The plan's ``network`` section (:func:`plan_network`): a given patch/batch wins; without
    ``plan.gpu_memory_gb`` the voxel budgets choose them, with it nnU-Net's memory model."""
    memory = settings.get("gpu_memory_gb")
    patch, patch_why, batch, batch_why = None, "", None, ""
    if settings["patch_size"]:
        patch, patch_why = list(settings["patch_size"]), "plan.patch_size (given)"
        if len(patch) != len(spacing):
            check_patch(patch, 1, resampled, spacing)  # raises: the wrong number of values
    elif memory is None:
        patch = patch_size(median_shape, settings["patch_voxels"])
        patch_why = f"the median image rounded up to multiples of {PATCH_MULTIPLE}, shrunk along its largest axis to at most plan.patch_voxels = {settings['patch_voxels']} voxels"
    if settings["batch_size"]:
        batch, batch_why = int(settings["batch_size"]), "plan.batch_size (given)"
    elif memory is None:
        batch = max(2, settings["batch_voxels"] // int(np.prod(patch)))
        batch_why = f"plan.batch_voxels = {settings['batch_voxels']} voxels over {int(np.prod(patch))} per patch, at least 2"
    base, cap = settings.get("network_base_width", 32), settings.get("network_max_width")
    return plan_network(list(spacing)[::-1], resampled, num_classes, base, cap, memory, patch, patch_why, batch, batch_why)


def make_plan(fingerprint: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """Derive the plan from the fingerprint and the ``plan``/``dataset`` config sections.

    The fingerprint's ``warnings`` (dataset-level findings on the labels) are carried over
    as the plan's ``warnings``, for the experiment report.
    """
    settings = config["plan"]
    spacings = np.asarray(fingerprint["spacings"], dtype=float)
    spacing = list(settings["target_spacing"]) if settings["target_spacing"] else target_spacing(spacings, np.asarray(fingerprint["shapes"]))
    if len(spacing) != spacings.shape[1]:
        raise SettingError(f"plan.target_spacing has {len(spacing)} values, the images have {spacings.shape[1]} dimensions")
    shapes = np.asarray(fingerprint["shapes"], dtype=float)
    # Shape after resampling: numpy order, so spacing is reversed.
    resampled = shapes * spacings[:, ::-1] / np.asarray(spacing[::-1])
    median_shape = np.median(resampled, axis=0)
    network = _network(settings, spacing, resampled, median_shape, trained_classes(config["dataset"]["labels"]))
    patch, batch = network["patch_size"], network["batch_size"]
    derived = settings.get("gpu_memory_gb") is not None and not settings["patch_size"]
    check_patch(patch, batch, resampled, spacing, network["size_divisor"] if derived else None)
    totals = list(fingerprint["class_totals"].values())[: trained_classes(config["dataset"]["labels"])]  # not the ignore label
    normalisation = {
        channel["name"]: channel_normalisation(channel["modality"], fingerprint["intensity"][channel["name"]], settings.get("mri_normalisation", "foreground"))
        for channel in config["dataset"]["channels"]
    }
    return {
        "dimensions": config["dataset"]["dimensions"],
        "channels": [c["name"] for c in config["dataset"]["channels"]],
        "labels": {str(k): v for k, v in config["dataset"]["labels"].items()},
        "regions": [dict(r) for r in config["dataset"].get("regions") or []] or None,
        "target_spacing": [float(s) for s in spacing],
        "median_shape_resampled": median_shape.round(1).tolist(),
        "patch_size": [int(p) for p in patch],
        "batch_size": int(batch),
        "network": network,
        "normalisation": normalisation,
        "class_weighting": settings["class_weighting"],
        "class_weights": class_weights(totals, settings["class_weighting"]),
        "preprocessing": dict(config["preprocessing"]),
        "warnings": [str(w) for w in fingerprint.get("warnings", [])],
        "training_class_voxels": {str(k): int(v) for k, v in fingerprint["class_totals"].items()},
    }
