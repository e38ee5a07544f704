"""New, unlabelled images given as files and folders: which cases they are, checked up front.

What an input (``python -m pipeline predict --input``, the config's ``predict.input``) may be:

- an image file (:data:`~pipeline.io.images.IMAGE_SUFFIXES`): one channel of a case;
- a folder that holds DICOM files (``.dcm``, or files with the ``DICM`` preamble): one DICOM
  series, one channel of a case named after the folder;
- any other folder: its image files and its subfolders that hold a DICOM series (one level
  down); anything else in it is named in a warning and not read.

Cases follow nnU-Net's channel suffix: ``<case>_0000``, ``<case>_0001`` ... are the channels
of ``<case>``, and a case with other channels than the model's ``0..C-1`` is an error. For a
one-channel model, inputs of which none ends in ``_0000`` are one case each, named by the
whole name (``patient_0012.nii.gz`` is case ``patient_0012``).

:func:`check_inputs` reads every file's header (not its voxels) and :func:`check_output_folder`
keeps predictions apart from the inputs, so that a bad input fails before a model is loaded.
Predictions keep the input's format (:func:`output_suffix`; NIfTI for a DICOM series).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

from pipeline.errors import CaseError
from pipeline.io.cases import CHANNEL_FILE, ManifestError, validate_case_id
from pipeline.io.images import GEOMETRY_TOLERANCE, IMAGE_SUFFIXES, Geometry, image_case_id, is_tiff

log = logging.getLogger(__name__)

#: What an input may be, for messages.
EXPECTED = f"image files ({', '.join(IMAGE_SUFFIXES)}) or DICOM series folders"


def output_suffix(path: str | os.PathLike[str]) -> str:
    """The image ending of ``path`` (``.nii.gz``, ``.nrrd`` ...): predictions keep the input's
    format; a DICOM series folder gives ``.nii.gz``."""
    p = Path(path)
    return ".nii.gz" if p.is_dir() else _suffix(p)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), path.suffix)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def is_dicom_file(path: Path) -> bool:
    """``.dcm`` files and files with the DICOM preamble (``DICM`` at byte 128)."""
    if not path.is_file():
        return False
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def holds_dicom(folder: Path) -> bool:
    """Whether ``folder`` holds DICOM files itself (not in subfolders)."""
    return any(is_dicom_file(p) for p in _visible(folder))


def _entries(item: Path) -> list[Path]:
    """The image files and DICOM series folders that one input stands for."""
    if item.is_file():
        if _is_image(item):
            return [item]
        if is_dicom_file(item):
            raise ManifestError(f"input {item} is a single DICOM file; give the folder that holds its series (one case per folder)")
        raise ManifestError(f"input {item} is not an image: expected {EXPECTED}")
    if not item.is_dir():
        raise ManifestError(f"input {item} does not exist (looked for {os.path.abspath(item)}; expected {EXPECTED})")
    children = _visible(item)
    if holds_dicom(item):
        images = [p.name for p in children if _is_image(p)]
        if images:
            raise ManifestError(
                f"input {item} holds a DICOM series and image file(s) {images[:5]}; put the series in a folder of its own (one case per folder)"
            )
        return [item]
    found = [p for p in children if _is_image(p) or (p.is_dir() and holds_dicom(p))]
    ignored = [p.name + ("/" if p.is_dir() else "") for p in children if p not in found]
    if not children:
        raise ManifestError(f"input {item} is an empty folder: expected {EXPECTED}")
    if not found:
        raise ManifestError(f"input {item} holds no images: expected {EXPECTED}; found {len(children)} other entr(ies) {ignored[:5]}")
    if ignored:
        log.warning("input %s: not read, as they are not %s: %s", item, EXPECTED, ", ".join(ignored[:10]) + (" ..." if len(ignored) > 10 else ""))
    return found


def collect_inputs(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], channels: int) -> dict[str, list[Path]]:
    """``{case id: [channel files or DICOM folders]}`` from image files and/or folders.

    Raises:
        ManifestError: an input is missing or holds no images; a case's channels are not
            the model's ``0..channels-1``; two inputs give the same case (or channel); a
            case id is not a safe file name. Each message names the case and the files.
    """
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not sources:
        raise ManifestError(f"no input given: expected {EXPECTED}")
    entries = list(dict.fromkeys(e for item in map(Path, sources) for e in _entries(item)))  # a file given twice counts once
    nnunet = channels > 1 or any(image_case_id(e).endswith("_0000") for e in entries)
    grouped: dict[str, dict[int, Path]] = {}
    for entry in entries:
        stem = image_case_id(entry)
        match = CHANNEL_FILE.match(stem) if nnunet else None
        if match is None and channels > 1:
            raise ManifestError(f"{entry}: a {channels}-channel model needs inputs named <case>_0000, <case>_0001, ... (nnU-Net naming), got {stem!r}")
        case, channel = (match["case"], int(match["channel"])) if match else (stem, 0)
        found = grouped.setdefault(validate_case_id(case, where=f"{entry}: "), {})
        if channel in found:
            raise ManifestError(
                f"case {case!r}: channel {channel:04d} is given twice, by {found[channel]} and {entry}; each case and channel needs exactly one input"
            )
        found[channel] = entry
    cases: dict[str, list[Path]] = {}
    for case, found in grouped.items():
        if sorted(found) != list(range(channels)):
            files = ", ".join(found[k].name for k in sorted(found))
            raise ManifestError(
                f"case {case!r}: found channel(s) {sorted(found)} ({files}), the model needs channels {list(range(channels))} "
                f"(<case>_0000 .. <case>_{channels - 1:04d})" + ("; give a one-channel model one file per case" if channels == 1 else "")
            )
        cases[case] = [found[k] for k in range(channels)]
    return cases


def image_header(path: Path, case: str) -> tuple[int, tuple[int, ...], Geometry | None]:
    """Dimensions, size ``(x, y[, z])`` and, where the header gives it, the geometry of an
    input, from its header only (a DICOM series: its first file and the number of files).

    Raises:
        CaseError: the file cannot be read, or a DICOM folder holds no or several series.
    """
    if path.is_file() and path.stat().st_size == 0:
        raise CaseError(case, path, f"file is empty (0 bytes); expected an image ({EXPECTED})")
    try:
        if path.is_dir():
            series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
            if len(series) != 1:
                found = "no DICOM series" if not series else f"{len(series)} DICOM series"
                raise CaseError(case, path, f"folder holds {found}, expected exactly one (one case per folder)")
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0])
            reader = sitk.ImageFileReader()
            reader.SetFileName(files[0])
            reader.ReadImageInformation()
            size = tuple(reader.GetSize()[:2]) + ((len(files),) if len(files) > 1 or reader.GetDimension() == 3 else ())
            return len(size), size, None
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape = [n for n, axis in zip(series.shape, series.axes) if n > 1 and axis != "S"]
            return len(shape), tuple(reversed(shape)), None
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        geometry = Geometry(tuple(reader.GetSize()), tuple(reader.GetSpacing()), tuple(reader.GetOrigin()), tuple(reader.GetDirection()))
        return reader.GetDimension(), geometry.size, geometry
    except CaseError:
        raise
    except (RuntimeError, OSError, ValueError, IndexError) as err:
        detail = next((line for line in str(err).splitlines() if "rror" in line), str(err)).strip()[:300]
        raise CaseError(case, path, f"cannot be read as an image (expected {EXPECTED}): {detail}") from err


def check_inputs(cases: dict[str, list[Path]], dimensions: int, tolerance: float = GEOMETRY_TOLERANCE) -> None:
    """Read every input's header: each must be a ``dimensions``-D image, and a case's channels
    must share one grid.

    Raises:
        CaseError: naming the case, the file, the value found and what was expected.
    """
    for case, files in cases.items():
        first: tuple[Path, tuple[int, ...], Geometry | None] | None = None
        for path in files:
            ndim, size, geometry = image_header(path, case)
            if ndim != dimensions:
                raise CaseError(case, path, f"image has {ndim} dimensions (size {size}, x y[ z]); the model expects {dimensions}D images")
            if first is None:
                first = (path, size, geometry)
                continue
            problem = (
                f"size {size} differs from {first[1]} voxels (x, y[, z])"
                if size != first[1]
                else first[2].mismatch(geometry, tolerance)
                if first[2] is not None and geometry is not None
                else None
            )
            if problem:
                raise CaseError(case, path, f"{problem} of the first channel {first[0].name}; a case's channels must share one grid (tolerance {tolerance})")


def check_output_folder(
    output: str | os.PathLike[str], sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], cases: dict[str, list[Path]]
) -> None:
    """The output folder must be a folder apart from the inputs: not an input folder, not
    inside one, and holding no input (an existing output counts as done, so an input there
    would be taken for its own prediction).

    Raises:
        ManifestError: naming the output folder and the input it collides with.
    """
    out = Path(output).resolve()
    if out.exists() and not out.is_dir():
        raise ManifestError(f"output {output} is a file; expected a folder for the predictions")
    for item in [sources] if isinstance(sources, (str, os.PathLike)) else list(sources):
        folder = Path(item).resolve()
        if folder.is_dir() and (out == folder or folder in out.parents):
            where = "is the input folder" if out == folder else "lies inside the input folder"
            raise ManifestError(
                f"output folder {output} {where} {item}; predictions would mix with the images (and an image named like a prediction would be kept as one): choose a folder outside the inputs"
            )
    for case, files in cases.items():
        for path in files:
            if out in path.resolve().parents:
                raise ManifestError(f"output folder {output} holds the input {path} of case {case!r}; choose an output folder that holds no inputs")
