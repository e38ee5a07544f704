"""What the demos share: files that ship in wheels, and their table and manifest of cases."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from pipeline.atomic import write_tsv
from pipeline.errors import PipelineError


def wheel_file(distribution: str, relative: str, purpose: str) -> Path:
    """Path of ``relative`` inside the installed ``distribution`` (a file its wheel ships).

    Raises:
        FileNotFoundError: the distribution is not installed or does not ship the file.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise PipelineError(f"{purpose} needs the {distribution} package (pip install {distribution}); its wheel ships the data") from err
    path = Path(dist.locate_file(relative))
    if not path.exists():
        raise PipelineError(f"{distribution} {dist.version} does not ship {relative} (expected at {path})")
    return path


def demo_frame(base: str | os.PathLike[str], splits: Mapping[str, str], channel: str) -> pd.DataFrame:
    """The demo's cases as a table: ``case``, ``<channel>``, ``label``, ``split``, with
    ``images/<case>.nii.gz`` and ``labels/<case>.nii.gz`` under ``base``."""
    base = Path(base)
    return pd.DataFrame(
        {
            "case": list(splits),
            channel: [str(base / "images" / f"{c}.nii.gz") for c in splits],
            "label": [str(base / "labels" / f"{c}.nii.gz") for c in splits],
            "split": list(splits.values()),
        }
    ).set_index("case", drop=False)


def write_demo_manifest(path: str | os.PathLike[str], splits: Mapping[str, str], channel: str) -> None:
    """Write a demo manifest (``case``, ``<channel>``, ``label``, ``split``), paths relative to it."""
    write_tsv(path, demo_frame("", splits, channel).reset_index(drop=True))
