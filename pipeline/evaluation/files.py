"""Evaluate label-map files or folders and write the tables atomically.

Everything here goes through the workflow's own I/O: images are read with
:func:`pipeline.io.images.read_sitk` (NIfTI, NRRD, MetaImage, PNG, TIFF) and paired by
:func:`pipeline.io.images.image_case_id`; a prediction must lie on the reference's voxel
grid (size, spacing, origin and direction, within ``geometry_tolerance`` as
``dataset.geometry_tolerance``), and one stored in another axis order or orientation is
put onto it by :func:`pipeline.io.reorient.align_to_grid`; dataset.json labels are parsed by
:func:`pipeline.io.dataset_json.label_map`; tables and JSON are written with
:mod:`pipeline.atomic` (missing values as empty TSV fields, NaN in JSON as null).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from pipeline.atomic import atomic_path, write_json, write_tsv
from pipeline.errors import CaseError, EvaluationError, PipelineError
from pipeline.io.dataset_json import label_map, load_dataset_json
from pipeline.io.images import GEOMETRY_TOLERANCE, IMAGE_SUFFIXES, Geometry, image_case_id, is_image_file, read_sitk
from pipeline.io.reorient import align_to_grid

from .case import evaluate_case
from .conventions import Conventions
from .summary import nnunet_style_summary, summarize

logger = logging.getLogger(__name__)


def _image_files(folder: Path) -> dict[str, Path]:
    """``{case id: file}`` of the image files in ``folder``; two files of one case raise."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        case = image_case_id(path)
        if case in found:
            raise EvaluationError(f"case {case!r} has two files in {folder}: {found[case].name} and {path.name}; keep one.")
        found[case] = path
    return found


def pair_files(reference: Path, prediction: Path) -> list[tuple[str, Path, Path]]:
    """(case id, reference file, prediction file) for two files or two folders, paired by case id."""
    for path in (reference, prediction):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist.")
    if reference.is_file() != prediction.is_file():
        raise EvaluationError(f"reference and prediction must both be files or both be folders, got {reference} and {prediction}.")
    if reference.is_file():
        return [(image_case_id(prediction), reference, prediction)]
    refs, preds = _image_files(reference), _image_files(prediction)
    if not refs:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in reference folder {reference}.")
    only_ref, only_pred = sorted(set(refs) - set(preds)), sorted(set(preds) - set(refs))
    if only_ref or only_pred:
        raise EvaluationError(
            f"unpaired files: cases without prediction in {prediction}: {only_ref[:20]}; "
            f"cases without reference in {reference}: {only_pred[:20]}. Expected the same case ids in both folders."
        )
    return [(case, refs[case], preds[case]) for case in sorted(refs)]


def read_label_map(path: str | os.PathLike[str], case: str) -> tuple[np.ndarray, Geometry]:
    """Read a label map: (array in numpy order ``(Z, Y, X)`` / ``(Y, X)``, geometry in ITK order).

    The voxel type of the file is kept. Raises CaseError for a missing or unreadable file,
    more than one component per voxel (e.g. RGB) or other than 2 or 3 dimensions.
    """
    image = read_sitk(path, case)
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise CaseError(case, path, f"{components} components per voxel; expected a single-channel label map")
    if image.GetDimension() not in (2, 3):
        raise CaseError(case, path, f"{image.GetDimension()}D image (size {image.GetSize()}); expected a 2D or 3D label map")
    return sitk.GetArrayFromImage(image), Geometry.of(image)


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or {} when it is not one (the caller reports why)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def labels_from_dataset_json(path: str | os.PathLike[str]) -> dict[int, str]:
    """``{value: class name}`` from a dataset.json, parsed as the workflow parses it.

    Labels are read by :func:`pipeline.io.dataset_json.label_map`: nnU-Net v2
    ``{"background": 0, "liver": 1}`` or MSD ``{"0": "background", "1": "liver"}``, values
    0..K-1; region lists are refused naming them. A full nnU-Net v2 dataset.json is checked
    by :func:`~pipeline.io.dataset_json.load_dataset_json`; a file that holds valid
    ``labels`` but not the rest (the original MSD layout, or one written for evaluation) is
    accepted too, since evaluation needs only the labels.

    Raises:
        PipelineError (ManifestError): missing file, not JSON, no labels, invalid labels.
    """
    p = Path(path)
    try:
        info = load_dataset_json(p)
    except PipelineError:
        info = _json_object(p)
        if not isinstance(info.get("labels"), dict) or not info["labels"]:
            raise
    return {int(value): name for value, name in label_map(info, p).items()}


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``table`` atomically: Parquet for ``.parquet``, else TSV as the workflow writes it
    (:func:`pipeline.atomic.write_tsv`: no index, missing values as empty fields)."""
    if str(path).endswith(".parquet"):
        with atomic_path(path, suffix=".parquet") as tmp:
            table.to_parquet(tmp, index=False)
    else:
        write_tsv(path, table)


def _has_pyarrow() -> bool:
    """Whether pyarrow is importable (then Parquet twins of the tables are written)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def evaluate_paths(
    reference: str | Path,
    prediction: str | Path,
    output: str | Path,
    labels: Mapping[int, str] | None = None,
    dataset_json: str | Path | None = None,
    conventions: Conventions = Conventions(),
    nnunet_compatible: bool = False,
    geometry_tolerance: float = GEOMETRY_TOLERANCE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate a reference/prediction file pair or folder pair; write and return the tables.

    Files are paired by case id (:func:`pipeline.io.images.image_case_id`); other files
    are ignored. Each prediction must be on its reference's voxel grid (size, spacing,
    origin, direction within ``geometry_tolerance``, see ``Geometry.mismatch``); one that is
    that grid stored in another axis order or orientation is reoriented onto it, with a
    warning. Writes the per-case table at ``output`` (TSV), the summary at
    ``<output stem>_summary.tsv`` and the conventions at ``<output stem>_conventions.json``
    beside it, each atomically (``pipeline.atomic``: missing values as empty fields, NaN in
    JSON as null); ``.parquet`` twins of both tables when pyarrow is importable. With
    ``nnunet_compatible`` also ``<output stem>_nnunet.tsv`` (see ``nnunet_style_summary``).

    Args:
        labels: ``{value: class name}``; otherwise read from ``dataset_json`` (nnU-Net v2 or
            MSD labels, see :func:`labels_from_dataset_json`).
        geometry_tolerance: as ``dataset.geometry_tolerance`` of the workflow config.

    Raises:
        FileNotFoundError: missing input, no images in the reference folder.
        GeometryError: size, spacing, origin or direction differ (naming case, file and the
            difference in mm).
        CaseError: an unreadable file. ManifestError: a bad dataset.json.
        EvaluationError: unpaired files, no labels, non-integer label maps, label values not
            in ``labels`` (each naming case, file and value). GeometryError and
            EvaluationError are ValueErrors too.
    """
    reference, prediction, output = Path(reference), Path(prediction), Path(output)
    if labels is None:
        if dataset_json is None:
            raise EvaluationError("give labels ({0: 'background', 1: ...}) or dataset_json (nnU-Net dataset.json).")
        labels = labels_from_dataset_json(dataset_json)
    tables = []
    for case, ref_path, pred_path in pair_files(reference, prediction):
        ref, ref_geo = read_label_map(ref_path, case)
        pred, pred_geo = read_label_map(pred_path, case)
        pred, _ = align_to_grid(pred, pred_geo, ref_geo, geometry_tolerance, case, pred_path, ref_path)
        try:
            tables.append(evaluate_case(ref, pred, ref_geo.spacing_numpy, labels, conventions, case_id=case))
        except ValueError as err:
            raise EvaluationError(f"{err} (files {ref_path} and {pred_path})") from err
        logger.info("evaluated case %s", case)
    per_case = pd.concat(tables, ignore_index=True)
    summary = summarize(per_case)
    stem = output.parent / output.stem
    write_table(per_case, output)
    write_table(summary, Path(f"{stem}_summary.tsv"))
    write_json(Path(f"{stem}_conventions.json"), conventions.as_dict())
    if _has_pyarrow():
        write_table(per_case, Path(f"{stem}.parquet"))
        write_table(summary, Path(f"{stem}_summary.parquet"))
    if nnunet_compatible:
        write_table(nnunet_style_summary(per_case), Path(f"{stem}_nnunet.tsv"))
    logger.info("wrote %d cases x %d classes to %s", per_case["case"].nunique(), len(summary) - 1, output)
    return per_case, summary
