"""The data check of one case: files readable, geometry consistent, labels valid.

Besides verifying, the check records per-case statistics (shape, spacing, foreground
intensity samples, class voxel counts) so the fingerprint can be computed from the check
files alone, without reading the images again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
import zlib

import numpy as np

from pipeline.errors import CaseError
from pipeline.io.images import Geometry, read_image

#: Foreground intensities sampled per case and channel for the dataset statistics.
INTENSITY_SAMPLES = 2000


def load_case(case: str, channel_paths: Sequence[str], label_path: str | None, dimensions: int, tolerance: float) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Read and verify a case's channels and label.

    Returns:
        image: float32 ``(C, Z, Y, X)`` (or ``(C, Y, X)``), label: integer ``(Z, Y, X)``
        (the file's integer type, or int64 for a float file) or None, and the geometry
        shared by all of them.

    Raises:
        CaseError: naming the case, the file, the value found and what was expected.
    """
    if not channel_paths:
        raise CaseError(case, "-", "no input channel given; dataset.channels needs at least one")
    missing = [i for i, path in enumerate(channel_paths) if not str(path or "").strip()]
    if missing:
        raise CaseError(
            case, "-", f"no file given for input channel(s) {[i + 1 for i in missing]} of {len(channel_paths)}: "
            f"every case needs all {len(channel_paths)} channels (empty manifest entry, or a channel file missing from the dataset)",
        )
    image: np.ndarray | None = None
    geometry = None
    for index, path in enumerate(channel_paths):
        array, geo = read_image(path, case)
        _check_dimensions(case, path, array, dimensions)
        bad = int((~np.isfinite(array)).sum()) or _nonfinite_in_nifti(path)
        if bad:
            raise CaseError(case, path, f"{bad} voxel(s) are NaN or infinite; expected finite intensities")
        if geometry is None:
            geometry = geo
            image = np.empty((len(channel_paths), *array.shape), dtype=np.float32)
        else:
            _check_same_grid(case, path, geometry, geo, tolerance, "the first channel")
        image[index] = array  # type: ignore[index]
        del array
    assert image is not None and geometry is not None
    label = None
    if label_path:
        raw, geo = read_image(label_path, case, dtype=None)
        _check_dimensions(case, label_path, raw, dimensions)
        _check_same_grid(case, label_path, geometry, geo, tolerance, "the image")
        if np.issubdtype(raw.dtype, np.floating):
            bad = ~np.isfinite(raw) | (raw != np.round(raw))
            if bad.any():
                raise CaseError(case, label_path, f"label holds non-integer value {raw[bad].ravel()[0]}; expected integer class values")
            raw = raw.astype(np.int64)
        elif not np.issubdtype(raw.dtype, np.integer):
            raw = raw.astype(np.int64)
        label = raw
    return image, label, geometry


def class_voxel_counts(label: np.ndarray) -> np.ndarray:
    """Voxels per label value ``0..max`` of a non-negative integer label, slab by slab.

    ``np.bincount`` converts its input to int64; doing it per slab keeps that copy small.
    """
    counts = np.zeros(1, dtype=np.int64)
    flat = label.reshape(label.shape[0], -1) if label.ndim > 1 else label.reshape(1, -1)
    step = max(1, (1 << 22) // max(1, flat.shape[1]))
    for start in range(0, flat.shape[0], step):
        part = np.bincount(flat[start : start + step].ravel())
        if len(part) > len(counts):
            counts = np.pad(counts, (0, len(part) - len(counts)))
        counts[: len(part)] += part
    return counts


def _nonfinite_in_nifti(path: str) -> int:
    """NaN/Inf voxels of a float NIfTI file, read with nibabel.

    SimpleITK's NIfTI reader turns NaN into 0, which would hide them from the check.
    """
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        return 0
    import nibabel as nib

    image = nib.load(str(path))
    if not np.issubdtype(image.get_data_dtype(), np.floating):
        return 0
    return int((~np.isfinite(np.asanyarray(image.dataobj))).sum())


def _check_dimensions(case: str, path: str, array: np.ndarray, dimensions: int) -> None:
    if array.ndim != dimensions:
        raise CaseError(case, path, f"image has {array.ndim} dimensions (shape {array.shape}); dataset.dimensions expects {dimensions}D")


def _check_same_grid(case: str, path: str, reference: Geometry, other: Geometry, tolerance: float, what: str) -> None:
    problem = reference.mismatch(other, tolerance)
    if problem:
        raise CaseError(case, path, f"{problem} of {what}; channels and label must share one grid (tolerance {tolerance})")


def check_case(case: str, channel_paths: Sequence[str], label_path: str | None, labels: Mapping[int, str], dimensions: int, tolerance: float, seed: int = 0) -> dict[str, Any]:
    """Verify one case and summarise it for the fingerprint.

    Returns:
        A JSON-friendly dict: ``case``, ``geometry`` (ITK order), ``shape`` (numpy order),
        ``spacing`` (mm, ITK order), ``class_counts`` (voxels per label value),
        ``empty_label`` (no foreground: flagged, not failed), and per channel a seeded
        sample of intensities inside the foreground (label > 0, else nonzero voxels).
    """
    image, label, geometry = load_case(case, channel_paths, label_path, dimensions, tolerance)
    result: dict[str, Any] = {"case": case, "geometry": geometry.to_dict(), "shape": list(image.shape[1:]), "spacing": list(geometry.spacing)}
    if label is not None:
        negative = label.min() < 0
        counts = class_voxel_counts(label) if not negative else np.zeros(0, dtype=np.int64)
        values = set(np.flatnonzero(counts).tolist())
        if negative:
            values |= set(np.unique(label[label < 0]).tolist())
        unknown = sorted(values - set(labels))
        if unknown:
            raise CaseError(case, label_path, f"label value(s) {unknown} are not declared; dataset.labels declares {sorted(labels)}")
        counts = np.pad(counts, (0, max(0, len(labels) - len(counts))))
        result["class_counts"] = counts[: len(labels)].tolist()
        result["empty_label"] = bool(counts[1:].sum() == 0)
        foreground = label > 0 if not result["empty_label"] else (image != 0).any(axis=0)
    else:
        foreground = (image != 0).any(axis=0)
    rng = np.random.default_rng([seed, zlib.crc32(case.encode())])
    samples = []
    for channel in image:
        values = channel[foreground] if foreground.any() else channel.ravel()
        take = min(INTENSITY_SAMPLES, values.size)
        samples.append(np.sort(rng.choice(values, size=take, replace=False)).round(4).tolist())
    result["intensity_samples"] = samples
    return result
