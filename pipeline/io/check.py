"""The data check of one case: files readable, geometry usable and consistent, labels valid.

Besides verifying, the check records per-case statistics (shape, spacing, foreground
intensity samples, class voxel counts) so the fingerprint can be computed from the check
files alone, without reading the images again.

Every file's geometry is checked as its header writes it (:func:`header_geometry`) before
SimpleITK reads it, since SimpleITK reads a NIfTI ``pixdim`` of 0 or NaN as 1 mm, a negative
one as its absolute value and a non-finite MetaImage offset as 0; then as SimpleITK reads it
(:func:`pipeline.io.images.read_sitk`).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import CaseError
from pipeline.io.gzip_check import gzip_problem
from pipeline.io.images import Geometry, check_geometry, read_image
from pipeline.io.label_values import declared_values, to_label_index

#: Foreground intensities sampled per case and channel for the dataset statistics.
INTENSITY_SAMPLES = 2000


def load_case(
    case: str, channel_paths: Sequence[str], label_path: str | None, dimensions: int, tolerance: float, label_values: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Read and verify a case's channels and label.

    Returns:
        image: float32 ``(C, Z, Y, X)`` (or ``(C, Y, X)``), label: integer ``(Z, Y, X)``
        or None, and the geometry shared by all of them. With ``label_values`` (the declared
        values, sorted) the label holds their indices ``0..K-1`` (uint8/uint16); without,
        the file's values (its integer type, or int64 for a float file).

    Raises:
        CaseError: naming the case, the file, the value found and what was expected; also
            for a ``label_path`` that is given but missing or unreadable.
    """
    if not channel_paths:
        raise CaseError(case, "-", "no input channel given; dataset.channels needs at least one")
    missing = [i for i, path in enumerate(channel_paths) if not str(path or "").strip()]
    if missing:
        raise CaseError(
            case,
            "-",
            f"no file given for input channel(s) {[i + 1 for i in missing]} of {len(channel_paths)}: "
            f"every case needs all {len(channel_paths)} channels (empty manifest entry, or a channel file missing from the dataset)",
        )
    image: np.ndarray | None = None
    geometry = None
    for index, path in enumerate(channel_paths):
        array, geo = read_checked(path, case)
        _check_dimensions(case, path, array, dimensions)
        bad = int((~np.isfinite(array)).sum()) or _nonfinite_in_nifti(path, case)
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
        if not Path(label_path).exists():
            raise CaseError(
                case,
                label_path,
                "label file does not exist; the dataset names it as this case's label (an unlabelled test case has an empty label entry in the manifest)",
            )
        try:
            raw, geo = read_checked(label_path, case, dtype=None)
        except CaseError as err:
            raise CaseError(case, label_path, f"label: {err.problem}") from err
        _check_dimensions(case, label_path, raw, dimensions)
        _check_same_grid(case, label_path, geometry, geo, tolerance, "the image")
        if np.issubdtype(raw.dtype, np.floating):
            bad = ~np.isfinite(raw) | (raw != np.round(raw))
            if bad.any():
                raise CaseError(case, label_path, f"label holds non-integer value {raw[bad].ravel()[0]}; expected integer class values")
            raw = raw.astype(np.int64)
        elif not np.issubdtype(raw.dtype, np.integer):
            raw = raw.astype(np.int64)
        label = raw if label_values is None else _label_index(case, label_path, raw, label_values)
    return image, label, geometry


def _label_index(case: str, path: str, raw: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """``raw`` label values as indices into the declared ``values``; CaseError naming undeclared ones."""
    try:
        return to_label_index(raw, np.asarray(values, dtype=np.int64), "label", case)
    except ValueError:
        unknown = sorted(set(np.unique(raw).tolist()) - {int(v) for v in values})
        raise CaseError(case, path, f"label value(s) {unknown[:10]} are not declared; dataset.labels declares {[int(v) for v in values]}") from None


def read_checked(path: str | os.PathLike[str], case: str, dtype: type | None = np.float32) -> tuple[np.ndarray, Geometry]:
    """:func:`pipeline.io.images.read_image` after checking the geometry its header writes (:func:`header_geometry`).

    A ``.gz`` file is read through once first: SimpleITK reads a truncated gzip stream as
    if the missing voxels were 0 (:func:`pipeline.io.gzip_check.gzip_problem`: O(1) for NIfTI).

    Raises:
        CaseError: naming the case, the file and the value (e.g. ``spacing (0.0, 1.0, 1.0)``).
    """
    header = header_geometry(path) if Path(path).is_file() else None
    if header:
        check_geometry(header[1], case, path, header[0])
    # SimpleITK reads a truncated .nii.gz without an error, the missing voxels as 0.
    broken = gzip_problem(path) if Path(path).is_file() else None
    if broken:
        raise CaseError(case, path, f"cannot be read as an image (truncated or corrupt file?): {broken}; expected a complete gzip stream")
    return read_image(path, case, dtype=dtype)


def header_geometry(path: str | os.PathLike[str]) -> tuple[str, dict[str, list[float]]] | None:
    """The geometry as a NIfTI, NRRD or MetaImage header writes it, before SimpleITK reads it.

    Returns ``(where, fields)`` for :func:`pipeline.io.images.geometry_problem`, or None for other formats and
    headers that cannot be parsed (the reader then says why). NIfTI: ``pixdim`` of the
    spatial axes, qform offset and quaternion (if ``qform_code`` > 0), sform (if
    ``sform_code`` > 0). NRRD: ``space directions`` (their lengths are the spacing) or
    ``spacings`` of the domain axes, ``space origin``. MetaImage: ``ElementSpacing``
    (else ``ElementSize``), ``Offset``/``Origin``/``Position``, ``TransformMatrix``/``Rotation``/``Orientation``.
    """
    name = str(path).lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            return _nifti_header(path, name.endswith(".gz"))
        if name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
            with open(path, "rb") as handle:
                text = handle.read(1 << 16).decode("latin-1")
            return _meta_header(text) if name.endswith((".mha", ".mhd")) else _nrrd_header(text)
    except (OSError, EOFError, zlib.error, ValueError):
        return None
    return None


def _nifti_header(path: str | os.PathLike[str], gzipped: bool) -> tuple[str, dict[str, list[float]]] | None:
    """Geometry fields of a NIfTI-1 or NIfTI-2 header, read with nibabel without its fixes."""
    import nibabel as nib

    with (gzip.open if gzipped else open)(path, "rb") as handle:
        raw = handle.read(540)
    sizes = {int.from_bytes(raw[:4], order) for order in ("little", "big")}
    if len(raw) < 348 or not sizes & {348, 540}:
        return None
    try:
        header = (nib.Nifti2Header if 540 in sizes else nib.Nifti1Header).from_fileobj(io.BytesIO(raw), check=False)
    except nib.spatialimages.HeaderDataError:
        return None
    n = int(min(max(int(header["dim"][0]), 1), 3))
    fields = {f"spacing pixdim[1:{n + 1}]": header["pixdim"][1 : 1 + n].tolist()}
    if header["qform_code"] > 0:
        fields["qform offset"] = [float(header[f"qoffset_{a}"]) for a in "xyz"]
        fields["qform quaternion"] = [float(header[f"quatern_{a}"]) for a in "bcd"]
    if header["sform_code"] > 0:
        sform = np.array([header[f"srow_{a}"] for a in "xyz"], dtype=np.float64)
        fields["sform offset"], fields["direction sform"] = sform[:, 3].tolist(), sform[:n, :n].ravel().tolist()
    return "NIfTI header", fields


def _numbers(text: str) -> list[float]:
    """The numbers of a header value such as ``1 2 3`` or ``1,0,0``."""
    return [float(v) for v in re.split(r"[\s,]+", text.strip()) if v]


def _nrrd_header(text: str) -> tuple[str, dict[str, list[float]]]:
    """Geometry fields of an NRRD header (it ends at the first empty line)."""
    entries: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines()[1:]:
        key, _, value = line.partition(":")
        entries.setdefault(key.strip().lower(), value.strip())
    kinds = entries.get("kinds", "").split()
    fields: dict[str, list[float]] = {}
    if "space directions" in entries:
        vectors = [_numbers(v) for v in re.findall(r"\(([^)]*)\)", entries["space directions"])]
        fields["spacing"] = [float(np.linalg.norm(v)) for v in vectors]
        if vectors and all(len(v) == len(vectors) for v in vectors):
            fields["direction"] = np.array(vectors).T.ravel().tolist()
    elif "spacings" in entries:
        values = entries["spacings"].split()
        fields["spacing"] = [float(v) for i, v in enumerate(values) if i >= len(kinds) or kinds[i].lower() in ("domain", "space")]
    if "space origin" in entries:
        fields["origin"] = _numbers(entries["space origin"].strip("() "))
    return "NRRD header", fields


def _meta_header(text: str) -> tuple[str, dict[str, list[float]]]:
    """Geometry fields of a MetaImage header (it ends at ``ElementDataFile``)."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "elementdatafile":
            break
        entries.setdefault(key.strip().lower(), value.strip())
    keys = {
        "spacing": ("elementspacing", "elementsize"),
        "origin": ("offset", "origin", "position"),
        "direction": ("transformmatrix", "rotation", "orientation"),
    }
    found = {field: next((entries[k] for k in names if k in entries), None) for field, names in keys.items()}
    return "MetaImage header", {field: _numbers(value) for field, value in found.items() if value}


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


def _nonfinite_in_nifti(path: str, case: str = "?") -> int:
    """NaN/Inf voxels of a float NIfTI file, read with nibabel.

    SimpleITK's NIfTI reader turns NaN into 0, which would hide them from the check.
    """
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        return 0
    import nibabel as nib

    try:
        image = nib.load(str(path))
        if not np.issubdtype(image.get_data_dtype(), np.floating):
            return 0
        return int((~np.isfinite(np.asanyarray(image.dataobj))).sum())
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise CaseError(case, path, f"cannot be read as an image by nibabel (truncated or corrupt file?): {type(err).__name__}: {err}") from err


def _check_dimensions(case: str, path: str, array: np.ndarray, dimensions: int) -> None:
    if array.ndim != dimensions:
        raise CaseError(case, path, f"image has {array.ndim} dimensions (shape {array.shape}); dataset.dimensions expects {dimensions}D")


def _check_same_grid(case: str, path: str, reference: Geometry, other: Geometry, tolerance: float, what: str) -> None:
    problem = reference.mismatch(other, tolerance)
    if problem:
        raise CaseError(case, path, f"{problem} of {what}; channels and label must share one grid (tolerance {tolerance})")


def check_case(
    case: str, channel_paths: Sequence[str], label_path: str | None, labels: Mapping[int, str], dimensions: int, tolerance: float, seed: int = 0
) -> dict[str, Any]:
    """Verify one case and summarise it for the fingerprint.

    Returns:
        A JSON-friendly dict: ``case``, ``geometry`` (ITK order), ``shape`` (numpy order),
        ``spacing`` (mm, ITK order), ``class_counts`` (voxels per declared label, in value order),
        ``labelled`` (a label was given), ``empty_label`` (no foreground: flagged, not
        failed), and per channel a seeded
        sample of intensities inside the foreground (label > 0, else nonzero voxels).
    """
    declared = declared_values(labels)
    image, label, geometry = load_case(case, channel_paths, label_path, dimensions, tolerance, declared)
    result: dict[str, Any] = {
        "case": case,
        "geometry": geometry.to_dict(),
        "shape": list(image.shape[1:]),
        "spacing": list(geometry.spacing),
        "labelled": label is not None,
    }
    if label is not None:
        counts = np.pad(class_voxel_counts(label), (0, len(declared)))[: len(declared)]
        result["class_counts"] = counts.tolist()
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
