"""Dataset manifests: which cases exist, their channel and label files, and their split.

A manifest is a TSV with columns ``case``, one column per input channel (named as in
``dataset.channels``), ``label`` and optionally ``split`` (``train`` or ``test``). Paths
may be relative to the manifest's folder. Case ids become file names, so they are
restricted to letters, digits, ``.``, ``_`` and ``-`` and may not start with a dot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError

CASE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
SPLITS = ("train", "test")


class ManifestError(PipelineError):
    """The manifest is missing, malformed or inconsistent."""


def validate_case_id(case: str, where: str = "") -> str:
    """Return ``case`` if it is a safe file name, else raise naming the problem.

    A safe id cannot escape its output folder (no ``/``, no ``..``, no leading dot) and
    needs no quoting in a shell.
    """
    if not isinstance(case, str) or not CASE_ID.match(case) or ".." in case:
        raise ManifestError(
            f"{where}case id {case!r} is not allowed: use letters, digits, '.', '_' and '-' only, "
            "not starting with '.' and without '..' (ids become file names)"
        )
    return case


def read_manifest(path: str | os.PathLike[str], channels: Sequence[str]) -> pd.DataFrame:
    """Read and check a manifest; return it with absolute paths and a ``split`` column.

    Returns:
        DataFrame indexed by case id with the channel columns, ``label`` (may be empty
        for unlabelled cases) and ``split``.

    Raises:
        ManifestError: naming the file, the row or column and what was expected.
    """
    p = Path(path)
    if not p.exists():
        raise ManifestError(f"manifest {p} does not exist")
    try:
        frame = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ManifestError(f"manifest {p} is not a readable tab-separated table: {err}") from err
    expected = ["case", *channels, "label"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ManifestError(f"manifest {p} lacks column(s) {missing}; expected columns {expected} (+ optional 'split'), found {list(frame.columns)}")
    if frame.empty:
        raise ManifestError(f"manifest {p} lists no cases")
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


def dataset_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """The cases of the configured dataset: a demo's, a dataset.json's or a manifest's.

    Returns:
        DataFrame indexed by case id with columns ``case``, one per channel (paths),
        ``label`` and ``split`` (``train``/``test``), whatever the source.
    """
    channels = [c["name"] for c in config["dataset"]["channels"]]
    demo = config["dataset"]["demo"]
    if demo == "nuclei":
        from pipeline.demo.nuclei import demo_table

        return demo_table(config, channels)
    if demo == "brain":
        from pipeline.demo.brain import CHANNEL, case_ids

        if channels != [CHANNEL]:
            raise ManifestError(f"the brain demo has one channel named {CHANNEL!r}; dataset.channels is {channels}")
        splits = case_ids(config["demo"]["cases"], config["demo"]["test_cases"])
        base = Path("results/demo/brain")
        return pd.DataFrame(
            {
                "case": list(splits),
                CHANNEL: [str(base / "images" / f"{c}.nii.gz") for c in splits],
                "label": [str(base / "labels" / f"{c}.nii.gz") for c in splits],
                "split": list(splits.values()),
            }
        ).set_index("case", drop=False)
    if config["dataset"].get("dataset_json"):
        from pipeline.io.dataset_json import read_dataset_json

        return read_dataset_json(config["dataset"]["dataset_json"], channels)
    if not config["dataset"]["manifest"]:
        raise ManifestError("neither dataset.manifest nor dataset.dataset_json is set (and dataset.demo is null): name a manifest TSV or a dataset.json")
    return read_manifest(config["dataset"]["manifest"], channels)


def manifest_path(config: Mapping[str, Any]) -> str:
    """The file that lists the cases (the generated manifest for a demo, else dataset.json or the manifest)."""
    demo = config["dataset"]["demo"]
    if demo:
        return f"results/demo/{demo}/manifest.tsv"
    return str(config["dataset"].get("dataset_json") or config["dataset"]["manifest"])
