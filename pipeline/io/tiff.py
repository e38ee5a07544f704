"""TIFF images with tifffile: single images, multi-page z-stacks and ImageJ hyperstacks.

SimpleITK reads only the first page of many TIFF files and ignores ImageJ metadata, so
TIFF goes through tifffile. Geometry:

- pixel size (x, y) from the ``XResolution``/``YResolution`` tags: pixels per inch or
  centimetre (``ResolutionUnit``) are converted to mm; with no unit, the ImageJ ``unit``
  entry (``micron``, ``nm``, ``mm`` ...) gives it, and without that the pixel size is
  taken as is (1 when there are no tags);
- slice spacing of a z-stack from the ImageJ ``spacing`` entry (same unit), else 1;
- origin zero and identity direction (TIFF has no place for them).

Axes of size 1 are dropped; RGB(A) samples are averaged into one channel (as for other
formats); a stack's pages (ImageJ ``Z``, or plain multi-page ``I``) become the z axis. A
file with several channels (``C``) or time points (``T``) is an error: give one file per
channel.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.errors import CaseError, SettingError

#: Length units (ImageJ ``unit`` entry, lower case) in mm.
UNIT_MM = {
    "mm": 1.0,
    "millimeter": 1.0,
    "millimetre": 1.0,
    "micron": 1e-3,
    "microns": 1e-3,
    "um": 1e-3,
    "\u00b5m": 1e-3,
    "\\u00b5m": 1e-3,
    "micrometer": 1e-3,
    "nm": 1e-6,
    "nanometer": 1e-6,
    "cm": 10.0,
    "m": 1000.0,
    "inch": 25.4,
    "in": 25.4,
}
#: TIFF ResolutionUnit codes (2, 3 standard; 4, 5 written by some tools) in mm.
RESOLUTION_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}
#: Axes that stack pages along z.
STACK_AXES = "ZIQ"
#: dtypes ImageJ hyperstacks can hold.
IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


def _pixel_size(tag: object, unit_mm: float | None) -> float:
    if tag is None:
        return 1.0 * (unit_mm or 1.0)
    numerator, denominator = tag.value  # type: ignore[attr-defined]
    if not numerator or not denominator:
        return 1.0
    return (denominator / numerator) * (unit_mm or 1.0)


def read_tiff(path: str | os.PathLike[str], case: str = "?") -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a TIFF file as a numpy array ``(Y, X)`` or ``(Z, Y, X)`` and its spacing (mm, ITK order).

    Raises:
        CaseError: the file cannot be read, or holds several channels or time points.
    """
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            array = series.asarray()
            axes = series.axes
            same = [s for s in tif.series if s.shape == series.shape and s.dtype == series.dtype]
            if len(tif.series) > 1 and len(same) == len(tif.series) and axes == "YX":
                # One 2D series per page (written page by page): a z-stack.
                array, axes = np.stack([s.asarray() for s in tif.series]), "ZYX"
            page = tif.pages[0]
            imagej = tif.imagej_metadata or {}
            tags = page.tags  # type: ignore[union-attr]
            unit_code = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 1
            x_tag, y_tag = tags.get("XResolution"), tags.get("YResolution")
    except (tifffile.TiffFileError, OSError, ValueError, EOFError, KeyError, IndexError) as err:
        raise CaseError(case, p, f"cannot be read as a TIFF image (truncated or corrupt file?): {err}") from err
    if "S" in axes:
        array = array.mean(axis=axes.index("S"))
        axes = axes.replace("S", "")
    keep = [i for i, a in enumerate(axes) if array.shape[i] > 1 or a in "YX"]
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    extra = [f"{array.shape[axes.index(a)]} {'channels' if a == 'C' else 'time points'}" for a in axes if a in "CT"]
    if extra:
        raise CaseError(
            case, p, f"TIFF holds {' and '.join(extra)} (axes {axes}, shape {array.shape}); expected one image per file: write one file per channel"
        )
    stacked = [a for a in axes if a in STACK_AXES]
    if len(stacked) > 1 or not axes.endswith("YX"):
        raise CaseError(case, p, f"TIFF axes {axes!r} (shape {array.shape}) are not understood; expected YX or ZYX")
    if unit_code in RESOLUTION_UNIT_MM:
        unit_mm: float | None = RESOLUTION_UNIT_MM[unit_code]
    else:
        unit_mm = UNIT_MM.get(str(imagej.get("unit", "")).strip().lower())
    spacing = [_pixel_size(x_tag, unit_mm), _pixel_size(y_tag, unit_mm)]
    if array.ndim == 3:
        z_unit = UNIT_MM.get(str(imagej.get("unit", "")).strip().lower(), 1.0)
        spacing.append(float(imagej.get("spacing", 1.0)) * z_unit)
    return array, tuple(float(s) for s in spacing)


def write_tiff(array: np.ndarray, spacing: tuple[float, ...], path: str | os.PathLike[str]) -> None:
    """Write ``array`` (numpy order, 2D or 3D) as a TIFF with its spacing in mm, atomically.

    uint8, uint16 and float32 arrays become ImageJ hyperstacks (unit ``mm``, z spacing
    kept); other dtypes a plain 2D TIFF with the pixel size in pixels per centimetre.
    """
    import tifffile

    if array.ndim not in (2, 3):
        raise SettingError(f"TIFF output holds 2D or 3D images, got shape {array.shape} for {path}")
    imagej = array.dtype.type in IMAGEJ_DTYPES
    if not imagej and array.ndim == 3:
        raise SettingError(f"a 3D TIFF needs uint8, uint16 or float32 voxels to keep its z spacing, got {array.dtype} for {path}")
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        if imagej:
            metadata = {"unit": "mm", "axes": "ZYX" if array.ndim == 3 else "YX"}
            if array.ndim == 3:
                metadata["spacing"] = float(spacing[2])
            tifffile.imwrite(tmp, array, imagej=True, resolution=(1.0 / spacing[0], 1.0 / spacing[1]), metadata=metadata)
        else:
            tifffile.imwrite(tmp, array, resolution=(10.0 / spacing[0], 10.0 / spacing[1]), resolutionunit="CENTIMETER")
