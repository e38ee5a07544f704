"""Landmark tables: named points in world millimetres per case.

Format (TSV, one row per case and landmark): ``case``, ``landmark``, ``x``, ``y`` and, for 3D
images, ``z``; coordinates in mm in the ITK/LPS world frame that SimpleITK uses (for data
in RAS convention, e.g. MNI coordinates, negate x and y). Prediction tables add columns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError

AXES = ("x", "y", "z")


class LandmarkError(PipelineError):
    """A landmark table is missing, malformed or lacks a landmark of a case."""


def coordinate_columns(dimensions: int) -> list[str]:
    """``["x", "y"]`` or ``["x", "y", "z"]``."""
    return list(AXES[:dimensions])


def read_landmarks(path: str | os.PathLike[str], dimensions: int, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and check a landmark table.

    Args:
        names: the declared landmark names; ``None`` takes every name in the table, in the
            order of first appearance.
    Returns:
        The table with ``case`` and ``landmark`` as text and float coordinates, rows in file order.
    Raises:
        LandmarkError: naming the file, the line and what was expected (missing file or
            column, non-numeric coordinate, unknown landmark name, duplicate row).
    """
    p = Path(path)
    if not p.exists():
        raise LandmarkError(f"landmark table {p} does not exist")
    try:
        frame = pd.read_csv(p, sep="\t", dtype={"case": str, "landmark": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise LandmarkError(f"landmark table {p} is not a readable tab-separated table: {err}") from err
    expected = ["case", "landmark", *coordinate_columns(dimensions)]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise LandmarkError(f"landmark table {p} lacks column(s) {missing}; expected {expected}, found {list(frame.columns)}")
    if frame.empty:
        raise LandmarkError(f"landmark table {p} has no rows")
    for column in coordinate_columns(dimensions):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[values.isna() | ~np.isfinite(values.fillna(0))]
        if len(bad):
            row = frame.loc[bad[0]]
            raise LandmarkError(
                f"landmark table {p}, line {bad[0] + 2}: {column}={row[column]!r} of case {row['case']!r}, landmark {row['landmark']!r} is not a finite number (mm)"
            )
        frame[column] = values.astype(np.float64)
    known = list(names) if names else list(dict.fromkeys(frame["landmark"]))
    unknown = frame.loc[~frame["landmark"].isin(known)]
    if not unknown.empty:
        row = unknown.iloc[0]
        raise LandmarkError(
            f"landmark table {p}, line {unknown.index[0] + 2}: unknown landmark {row['landmark']!r} (case {row['case']!r}); declared landmarks are {known}"
        )
    dup = frame.duplicated(["case", "landmark"])
    if dup.any():
        row = frame.loc[dup].iloc[0]
        raise LandmarkError(f"landmark table {p} lists landmark {row['landmark']!r} of case {row['case']!r} more than once")
    return frame[expected].reset_index(drop=True)


def landmark_names(table: pd.DataFrame, names: Sequence[str] | None = None) -> list[str]:
    """The declared ``names``, or the table's names in order of first appearance."""
    return list(names) if names else list(dict.fromkeys(table["landmark"]))


def case_points(table: pd.DataFrame, case: str, names: Sequence[str], source: str = "the landmark table") -> np.ndarray:
    """World points ``(L, dim)`` in mm of ``case``, rows in the order of ``names``.

    Raises:
        LandmarkError: the case or one of its landmarks is missing (named in the message).
    """
    rows = table.loc[table["case"] == case].set_index("landmark")
    if rows.empty:
        raise LandmarkError(f"{source} has no landmarks for case {case!r}; expected {list(names)}")
    absent = [n for n in names if n not in rows.index]
    if absent:
        raise LandmarkError(f"{source} lacks landmark(s) {absent} of case {case!r}; expected every one of {list(names)}")
    columns = [c for c in AXES if c in table.columns]
    return rows.loc[list(names), columns].to_numpy(dtype=np.float64)


def points_table(case: str, names: Sequence[str], points: np.ndarray, extra: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A landmark table of one case from world points ``(L, dim)`` (plus per-landmark ``extra`` columns)."""
    points = np.asarray(points, dtype=np.float64)
    frame = pd.DataFrame({"case": case, "landmark": list(names)})
    for k, column in enumerate(coordinate_columns(points.shape[1])):
        frame[column] = points[:, k]
    for key, values in (extra or {}).items():
        frame[key] = values
    return frame


def landmark_settings(config: Mapping[str, Any]) -> tuple[str, list[str] | None]:
    """``(table path, declared names or None)`` of the configured dataset.

    Raises:
        LandmarkError: ``dataset.landmarks`` is not set.
    """
    dataset = config["dataset"]
    if not dataset.get("landmarks"):
        raise LandmarkError("a landmarks experiment needs dataset.landmarks: the TSV of landmark coordinates (case, landmark, x, y[, z] in mm, ITK/LPS)")
    return str(dataset["landmarks"]), (list(dataset["landmark_names"]) if dataset.get("landmark_names") else None)
