"""Image input/output with SimpleITK (and tifffile for TIFF), keeping the header geometry.

Formats: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``,
``.mhd``), PNG (SimpleITK, spacing from the ``pHYs`` chunk), a folder as one DICOM series
(SimpleITK/GDCM, geometry from the slice positions) and TIFF (``.tif``, ``.tiff``) read with
tifffile, so multi-page and ImageJ hyperstack files work: pixel size from the resolution
tags (converted to mm), the slice spacing of a z-stack from the ImageJ ``spacing`` entry;
TIFF stores no origin or direction (zero origin, identity direction).

Every read checks the geometry (:func:`geometry_problem`): spacing finite and > 0, origin and
direction finite, direction not singular. SimpleITK reads a NIfTI ``pixdim`` of 0 or NaN as
1 mm, so the data check also reads the headers as written (:mod:`pipeline.io.check`).

Array layout convention used throughout the package: numpy order, i.e. ``(Z, Y, X)`` for
3D and ``(Y, X)`` for 2D, as ``SimpleITK.GetArrayFromImage`` returns. Geometry is kept in
SimpleITK (ITK) order, ``(x, y, z)``; :meth:`Geometry.spacing_numpy` gives the spacing in
numpy axis order, in millimetres.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.atomic import atomic_path
from pipeline.errors import CaseError
from pipeline.io.gzip_check import gzip_problem
from pipeline.io.tiff import read_tiff, write_tiff

#: File endings read as one image each (a folder is read as a DICOM series).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".tif", ".tiff", ".png")

#: Default of ``dataset.geometry_tolerance`` (workflow/schemas/config.schema.yaml), see :meth:`Geometry.mismatch`.
GEOMETRY_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where an image lies in the world, in ITK order.

    Attributes:
        size: voxels per axis ``(x, y[, z])``.
        spacing: voxel size in mm per axis ``(x, y[, z])``.
        origin: world position of the first voxel centre in mm.
        direction: row-major direction cosine matrix, ``dim*dim`` values.
    """

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.size)

    @property
    def spacing_numpy(self) -> tuple[float, ...]:
        """Spacing in mm in numpy axis order ``(z, y, x)`` / ``(y, x)``."""
        return tuple(reversed(self.spacing))

    @property
    def shape_numpy(self) -> tuple[int, ...]:
        """Array shape in numpy axis order."""
        return tuple(reversed(self.size))

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        """The geometry of a SimpleITK image."""
        return cls(
            size=tuple(int(s) for s in image.GetSize()),
            spacing=tuple(float(s) for s in image.GetSpacing()),
            origin=tuple(float(o) for o in image.GetOrigin()),
            direction=tuple(float(d) for d in image.GetDirection()),
        )

    @classmethod
    def from_dict(cls, data: dict) -> Geometry:
        """Inverse of :meth:`to_dict` (lists from JSON become tuples)."""
        return cls(**{f.name: tuple(data[f.name]) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        """JSON-friendly representation."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set spacing, origin and direction of ``image`` to this geometry."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def mismatch(self, other: Geometry, tolerance: float, names: tuple[str, str] | None = None) -> str | None:
        """Describe the first difference of ``other`` from this geometry beyond ``tolerance``, else None.

        ``tolerance`` is relative for spacing, absolute in mm for the origin (scaled by
        the largest spacing: ``tolerance * max(spacing)`` mm per axis) and absolute for
        direction cosines. The message gives both values in ITK order ``(x, y[, z])`` and
        the difference in their units, e.g. ``origin (30.0, 0.0, 0.0) mm differs from
        (0.0, 0.0, 0.0) mm by 30.0 mm``; ``names`` (this, other), e.g. ``("reference",
        "prediction")``, labels the two values.
        """
        this, that = (f" ({names[0]})", f" ({names[1]})") if names else ("", "")
        if self.size != other.size:
            return f"size {other.size}{that} differs from {self.size}{this} voxels (x, y[, z]); array shape {other.shape_numpy} vs {self.shape_numpy}"
        ours, theirs = np.asarray(self.spacing), np.asarray(other.spacing)
        if not np.allclose(ours, theirs, rtol=tolerance, atol=0):
            diff = np.abs(theirs - ours)
            percent = 100 * float((diff / np.maximum(np.abs(ours), 1e-12)).max())
            return (
                f"spacing {_rounded(other.spacing)} mm{that} differs from {_rounded(self.spacing)} mm{this} "
                f"by up to {_rounded(diff.max())} mm ({_rounded(percent)}%; tolerance {tolerance:g} relative)"
            )
        atol = tolerance * max(self.spacing)
        if not np.allclose(self.origin, other.origin, atol=atol):
            distance = float(np.linalg.norm(np.subtract(other.origin, self.origin)))
            return (
                f"origin {_rounded(other.origin)} mm{that} differs from {_rounded(self.origin)} mm{this} "
                f"by {_rounded(distance)} mm (tolerance {atol:.3g} mm per axis)"
            )
        if not np.allclose(self.direction, other.direction, atol=tolerance):
            worst = float(np.abs(np.subtract(other.direction, self.direction)).max())
            return (
                f"direction {_rounded(other.direction)}{that} differs from {_rounded(self.direction)}{this} "
                f"(row-major direction cosines; they differ by up to {_rounded(worst)}, tolerance {tolerance:g})"
            )
        return None


def _rounded(values: float | Sequence[float]) -> float | tuple[float, ...]:
    """Numbers rounded to 6 significant digits for messages (``0.800000011920929`` -> ``0.8``)."""
    if isinstance(values, (int, float, np.floating, np.integer)):
        return float(f"{float(values):.6g}") + 0.0  # + 0.0 turns -0.0 into 0.0
    return tuple(float(f"{float(v):.6g}") + 0.0 for v in values)


def is_tiff(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a TIFF file (read and written with tifffile)."""
    return str(path).lower().endswith((".tif", ".tiff"))


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file with one of ``IMAGE_SUFFIXES`` (hidden files, such as the
    temporary files of :func:`pipeline.atomic.atomic_path`, are not)."""
    p = Path(path)
    return p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES)


def image_case_id(path: str | os.PathLike[str]) -> str:
    """File name without its image ending (``a/b/case_01.nii.gz`` -> ``case_01``)."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_sitk(path: str | os.PathLike[str], case: str = "?") -> sitk.Image:
    """Read one image file, or a folder as a DICOM series, as a SimpleITK image.

    Raises:
        CaseError: the file is missing, truncated or not an image, or its geometry is unusable
            (:func:`geometry_problem`), naming the case, the file and the value.
    """
    p = Path(path)
    if not p.exists():
        raise CaseError(case, p, "file does not exist (expected an image: " + ", ".join(IMAGE_SUFFIXES) + " or a DICOM folder)")
    if p.is_file() and p.stat().st_size == 0:
        raise CaseError(case, p, "file is empty (0 bytes); expected an image (an interrupted copy or download?)")
    try:
        if p.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(p))
            if not series:
                raise CaseError(case, p, "folder holds no DICOM series (expected one series of .dcm files)")
            if len(series) > 1:
                raise CaseError(case, p, f"folder holds {len(series)} DICOM series, expected exactly one")
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(p), series[0]))
            image = reader.Execute()
        elif is_tiff(p):
            array, spacing = read_tiff(p, case)
            check_geometry({"spacing": spacing}, case, p, "TIFF resolution tags")
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(spacing)
        else:
            image = sitk.ReadImage(str(p))
    except CaseError:
        raise
    except (RuntimeError, OSError, EOFError, zlib.error) as err:
        first = str(err).strip().splitlines()
        detail = next((line for line in first if "ERROR" in line or "rror" in line), first[0] if first else "")
        detail = gzip_problem(p, full=True) or detail.strip()[:300]
        raise CaseError(case, p, f"cannot be read as an image (truncated or corrupt file?): {detail}") from err
    geometry = Geometry.of(image)
    check_geometry({"spacing": geometry.spacing, "origin": geometry.origin, "direction": geometry.direction}, case, p, "as read by SimpleITK")
    return image


def geometry_problem(fields: Mapping[str, Sequence[float]], where: str) -> str | None:
    """Why a geometry cannot be used, else None.

    ``fields``, by the first word of their name: ``spacing`` (each value finite and > 0 mm),
    ``direction`` (a flat square matrix whose columns are the axes, possibly scaled: finite
    and not singular) and any other values that must be finite (``origin``, a quaternion).
    ``where`` says where the values come from (``"NIfTI header"``), for the message.
    """
    for key, raw in fields.items():
        values, kind = np.asarray(raw, dtype=np.float64).ravel(), key.split()[0]
        shown = f"{key} {_rounded(values)} ({where})"
        if not np.isfinite(values).all():
            return f"{shown} is not finite; expected finite numbers"
        if kind == "spacing" and (values <= 0).any():
            return f"{shown}: every voxel size must be a number > 0 mm"
        n = int(np.sqrt(values.size))
        if kind == "direction" and n * n == values.size:
            matrix = values.reshape(n, n)
            norms = np.linalg.norm(matrix, axis=0)
            if (norms == 0).any() or abs(np.linalg.det(matrix / np.where(norms == 0, 1, norms))) < 1e-6:
                return f"{shown} is a singular matrix (its axes are not independent); expected a rotation"
    return None


def check_geometry(fields: Mapping[str, Sequence[float]], case: str, path: object, where: str) -> None:
    """Raise :class:`CaseError` naming the case, file and value if :func:`geometry_problem` finds one."""
    problem = geometry_problem(fields, where)
    if problem:
        raise CaseError(case, path, f"unusable geometry: {problem}; fix the file's header")


def read_image(path: str | os.PathLike[str], case: str = "?", dtype: type | None = np.float32) -> tuple[np.ndarray, Geometry]:
    """Read an image as a numpy array in ``(Z, Y, X)`` / ``(Y, X)`` order plus its geometry.

    ``dtype`` None keeps the file's voxel type. Multi-component (RGB) pixels are averaged
    to one channel; 4D files keep 4 axes, which the data check reports as a
    dimensionality error. Memory: one array of the result's size (plus the file's
    buffer while converting).
    """
    if is_tiff(path) and Path(path).is_file():
        array, spacing = read_tiff(path, case)
        ndim = array.ndim
        geometry = Geometry(size=array.shape[::-1], spacing=spacing, origin=(0.0,) * ndim, direction=tuple(np.eye(ndim).ravel().tolist()))
        check_geometry({"spacing": spacing}, case, path, "TIFF resolution tags")
        return array.astype(dtype or array.dtype, copy=False), geometry
    image = read_sitk(path, case)
    geometry = Geometry.of(image)
    view = sitk.GetArrayViewFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = view.mean(axis=-1)
        return array.astype(dtype or array.dtype, copy=False), geometry
    array = view.astype(dtype or view.dtype, copy=True)
    del view, image
    return array, geometry


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike[str]) -> None:
    """Write ``array`` (numpy order) with ``geometry`` to ``path`` atomically.

    The format follows the file ending (``.nii.gz``, ``.nrrd``, ``.mha`` ...); gzip
    compression is used for ``.nii.gz``.
    """
    if tuple(array.shape) != geometry.shape_numpy:
        raise ValueError(f"array shape {array.shape} does not match geometry shape {geometry.shape_numpy} for {path}")
    if is_tiff(path):
        if not (np.allclose(geometry.origin, 0) and np.allclose(geometry.direction, np.eye(geometry.ndim).ravel())):
            raise ValueError(f"TIFF cannot store origin {geometry.origin} and direction {geometry.direction} for {path}; write .nii.gz, .nrrd or .mha instead")
        write_tiff(array, geometry.spacing, path)
        return
    image = geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
    name = Path(path).name
    suffix = next((s for s in IMAGE_SUFFIXES if name.lower().endswith(s)), Path(path).suffix)
    with atomic_path(path, suffix=suffix) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=suffix in (".nii.gz", ".nrrd", ".mha"))
