"""Evaluate label-map files or folders and write the tables atomically."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .case import evaluate_case
from .conventions import Conventions
from .summary import nnunet_style_summary, summarize

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".tiff", ".tif", ".png")
SPACING_RTOL = 1e-4  # relative spacing difference tolerated between reference and prediction


def case_id_of(path: Path) -> str | None:
    """Case id = file name without its image suffix; None if the file is not a supported image."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def _image_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        case = case_id_of(path) if path.is_file() else None
        if case is None:
            continue
        if case in found:
            raise ValueError(f"case {case!r} has two files in {folder}: {found[case].name} and {path.name}; keep one.")
        found[case] = path
    return found


def pair_files(reference: Path, prediction: Path) -> list[tuple[str, Path, Path]]:
    """(case id, reference file, prediction file) for two files or two folders, paired by case id."""
    for path in (reference, prediction):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist.")
    if reference.is_file() != prediction.is_file():
        raise ValueError(
            f"reference and prediction must both be files or both be folders, got {reference} and {prediction}."
        )
    if reference.is_file():
        case = case_id_of(prediction) or prediction.name
        return [(case, reference, prediction)]
    refs, preds = _image_files(reference), _image_files(prediction)
    if not refs:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in reference folder {reference}.")
    only_ref, only_pred = sorted(set(refs) - set(preds)), sorted(set(preds) - set(refs))
    if only_ref or only_pred:
        raise ValueError(
            f"unpaired files: cases without prediction in {prediction}: {only_ref[:20]}; "
            f"cases without reference in {reference}: {only_pred[:20]}. Expected the same case ids in both folders."
        )
    return [(case, refs[case], preds[case]) for case in sorted(refs)]


def read_label_map(path: Path, case: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a label map with SimpleITK: (array in numpy axis order, spacing in mm in that order)."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"case {case!r}: cannot read {path}: {err}") from err
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"case {case!r}: {path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "expected a single-channel label map."
        )
    return sitk.GetArrayFromImage(image), np.asarray(image.GetSpacing()[::-1], dtype=np.float64)


def labels_from_dataset_json(path: Path) -> dict[int, str]:
    """``{value: name}`` from an nnU-Net v2 ``dataset.json`` (``"labels": {"name": value}``)."""
    if not path.is_file():
        raise FileNotFoundError(f"dataset.json {path} does not exist.")
    data = json.loads(path.read_text(encoding="utf-8"))
    raw = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path} has no 'labels' mapping like {{'background': 0, 'liver': 1}}.")
    out: dict[int, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"{path}: label {name!r} has value {value!r}; expected one integer (regions are not supported)."
            )
        out[value] = name
    return out


def write_table_atomic(table: pd.DataFrame, path: Path) -> None:
    """Write TSV (or Parquet for ``.parquet``) to a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: Callable[[str], None]
    if path.suffix == ".parquet":
        writer = lambda tmp: table.to_parquet(tmp, index=False)  # noqa: E731
    else:
        writer = lambda tmp: table.to_csv(tmp, sep="\t", index=False, na_rep="nan")  # noqa: E731
    _atomic(path, writer)


def _atomic(path: Path, writer: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json_atomic(data: object, path: Path) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, allow_nan=True)))


def _has_pyarrow() -> bool:
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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate a reference/prediction file pair or folder pair; write and return the tables.

    Files are paired by case id (file name without ``IMAGE_SUFFIXES``); other files are
    ignored. Writes the per-case table at ``output`` (TSV), the summary at
    ``<output stem>_summary.tsv`` and the conventions at ``<output stem>_conventions.json``
    beside it, each atomically; ``.parquet`` twins of both tables when pyarrow is importable.
    With ``nnunet_compatible`` also ``<output stem>_nnunet.tsv`` (see ``nnunet_style_summary``).

    Args:
        labels: ``{value: class name}``; otherwise read from ``dataset_json`` (nnU-Net v2).

    Raises:
        FileNotFoundError: missing input, no images in the reference folder.
        ValueError: unpaired files, shape or spacing mismatch, unreadable or non-integer
            label maps, label values not in ``labels`` (each naming case, file and value).
    """
    reference, prediction, output = Path(reference), Path(prediction), Path(output)
    if labels is None:
        if dataset_json is None:
            raise ValueError("give labels ({0: 'background', 1: ...}) or dataset_json (nnU-Net dataset.json).")
        labels = labels_from_dataset_json(Path(dataset_json))
    tables = []
    for case, ref_path, pred_path in pair_files(reference, prediction):
        ref, ref_spacing = read_label_map(ref_path, case)
        pred, pred_spacing = read_label_map(pred_path, case)
        if ref.shape != pred.shape:
            raise ValueError(
                f"case {case!r}: prediction {pred_path} has shape {pred.shape} but reference {ref_path} "
                f"has shape {ref.shape} (numpy axis order); expected the same grid."
            )
        if not np.allclose(ref_spacing, pred_spacing, rtol=SPACING_RTOL, atol=0):
            raise ValueError(
                f"case {case!r}: prediction {pred_path} has spacing {pred_spacing.tolist()} mm but reference "
                f"{ref_path} has {ref_spacing.tolist()} mm; resample the prediction to the reference grid."
            )
        try:
            tables.append(evaluate_case(ref, pred, ref_spacing, labels, conventions, case_id=case))
        except ValueError as err:
            raise ValueError(f"{err} (files {ref_path} and {pred_path})") from err
        logger.info("evaluated case %s", case)
    per_case = pd.concat(tables, ignore_index=True)
    summary = summarize(per_case)
    stem = output.parent / output.stem
    write_table_atomic(per_case, output)
    write_table_atomic(summary, Path(f"{stem}_summary.tsv"))
    _write_json_atomic(conventions.as_dict(), Path(f"{stem}_conventions.json"))
    if _has_pyarrow():
        write_table_atomic(per_case, Path(f"{stem}.parquet"))
        write_table_atomic(summary, Path(f"{stem}_summary.parquet"))
    if nnunet_compatible:
        write_table_atomic(nnunet_style_summary(per_case), Path(f"{stem}_nnunet.tsv"))
    logger.info("wrote %d cases x %d classes to %s", per_case["case"].nunique(), len(summary) - 1, output)
    return per_case, summary
