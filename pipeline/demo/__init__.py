"""Bundled demo datasets, generated from files that ship inside PyPI wheels (no download)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from pipeline.atomic import write_tsv


def write_demo_manifest(path: str | os.PathLike[str], splits: Mapping[str, str], channel: str) -> None:
    """Write a demo manifest (``case``, ``<channel>``, ``label``, ``split``), paths relative to it.

    Cases live in ``images/<case>.nii.gz`` and ``labels/<case>.nii.gz`` beside the manifest.
    """
    frame = pd.DataFrame(
        {
            "case": list(splits),
            channel: [f"images/{c}.nii.gz" for c in splits],
            "label": [f"labels/{c}.nii.gz" for c in splits],
            "split": list(splits.values()),
        }
    )
    write_tsv(path, frame)
