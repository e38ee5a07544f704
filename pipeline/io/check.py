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
        image: float32 ``(C, Z, Y, X)`` (or ``(C, Y, X)``), label: int ``(Z, Y, X)`` or None,
        and the geometry shared by all of them.

    Raises:
        CaseError: naming the case, the file, the value found and what was expected.
    """
    arrays, geometry = [], None
    for path in channel_paths:
        array, geo = read_image(path, case)
        _check_dimensions(case, path, array, dimensions)
        bad = int((~np.isfinite(array)).sum()) or _nonfinite_in_nifti(path)
        if bad:
            raise CaseError(case, path, f"{bad} voxel(s) are NaN or infinite; expected finite intensities")
        if geometry is None:
            geometry = geo
        else:
            _check_same_grid(case, path, geometry, geo, tolerance, "the first channel")
        arrays.append(array)
    if geometry is None:
        raise CaseError(case, "-", "no input channel given; dataset.channels needs at least one")
    label = None
    if label_path:
        raw, geo = read_image(label_path, case, dtype=np.float64)
        _check_dimensions(case, label_path, raw, dimensions)
        _check_same_grid(case, label_path, geometry, geo, tolerance, "the image")
        if not np.isfinite(raw).all() or not np.array_equal(raw, np.round(raw)):
            sample = raw[~np.isfinite(raw) | (raw != np.round(raw))].ravel()[0]
            raise CaseError(case, label_path, f"label holds non-integer value {sample}; expected integer class values")
        label = raw.astype(np.int64)
    return np.stack(arrays), label, geometry


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
        counts = np.bincount(label.ravel().clip(min=0), minlength=len(labels)) if label.min() >= 0 else None
        unknown = sorted(set(np.unique(label).tolist()) - set(labels))
        if counts is None or unknown:
            raise CaseError(case, label_path, f"label value(s) {unknown} are not declared; dataset.labels declares {sorted(labels)}")
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
