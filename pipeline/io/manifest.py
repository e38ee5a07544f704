"""Dataset manifests: which cases exist, their channel and label files, and their split.

A manifest is a TSV with columns ``case``, one column per input channel (named as in
``dataset.channels``), ``label`` and optionally ``split`` (``train`` or ``test``). Paths
may be relative to the manifest's folder. Case ids become file names, so they are
restricted to letters, digits, ``.``, ``_`` and ``-`` and may not start with a dot
(:mod:`pipeline.io.cases`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.io.cases import SPLITS, ManifestError, validate_case_id


def read_manifest(path: str | os.PathLike[str], channels: Sequence[str]) -> pd.DataFrame:
    """Read and check a manifest; return it with absolute paths and a ``split`` column.

    Returns:
        DataFrame indexed by case id with the channel columns, ``label`` (may be empty
        for unlabelled cases) and ``split``.

    Raises:
        ManifestError: naming the file, the row or column and what was expected.
    """
    p = Path(path)
    if not p.is_file():
        problem = "is a folder, not a TSV file" if p.is_dir() else "does not exist"
        raise ManifestError(f"manifest {p} {problem} (looked for {os.path.abspath(p)}; dataset.manifest names it)")
    try:
        frame = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ManifestError(f"manifest {p} is not a readable tab-separated table: {err}") from err
    expected = ["case", *channels, "label"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ManifestError(f"manifest {p} lacks column(s) {missing}; expected columns {expected} (+ optional 'split'), found {list(frame.columns)}")
    if frame.empty:
        raise ManifestError(f"manifest {p} lists no cases: it holds the header line {list(frame.columns)} but no row below it; expected one row per case")
    for row, case in enumerate(frame["case"], start=2):
        validate_case_id(case, where=f"manifest {p}, line {row}: ")
    duplicated = sorted(set(frame["case"][frame["case"].duplicated()]))
    if duplicated:
        raise ManifestError(f"manifest {p} lists case id(s) {duplicated} more than once; case ids must be unique")
    if "split" not in frame.columns:
        frame["split"] = "train"
    frame["split"] = frame["split"].replace("", "train")
    bad = frame.loc[~frame["split"].isin(SPLITS), ["case", "split"]]
    if not bad.empty:
        first = bad.iloc[0]
        raise ManifestError(f"manifest {p}: case {first['case']!r} has split {first['split']!r}, expected one of {list(SPLITS)}")
    base = p.resolve().parent
    for column in [*channels, "label"]:
        frame[column] = [str((base / v).resolve()) if v else "" for v in frame[column]]
    return frame.set_index("case", drop=False)[["case", *channels, "label", "split"]]
