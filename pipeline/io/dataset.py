"""The configured dataset as one table, whatever its source: a demo, a dataset.json or a manifest.

Demo datasets register themselves here (:func:`register_demo`, done by importing
:mod:`pipeline.demo`, which the config layer does); this package imports no demo.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from pipeline.io.cases import ManifestError


@dataclasses.dataclass(frozen=True)
class Demo:
    """A generated dataset.

    Attributes:
        table: ``(config, channel names) -> table`` of its cases, as :func:`dataset_table`.
        make_case: ``(config, case, row of the table) -> None``: write the case's files.
        write_manifest: ``(config, output) -> None``: write its manifest TSV.
        landmark_table: the landmark table it generates (relative to the working folder),
            which ``dataset.landmarks`` defaults to for landmark experiments; or None.
    """

    table: Callable[[Mapping[str, Any], list[str]], pd.DataFrame]
    make_case: Callable[[Mapping[str, Any], str, pd.Series], None]
    write_manifest: Callable[[Mapping[str, Any], str | os.PathLike[str]], None]
    landmark_table: str | None = None


DEMOS: dict[str, Demo] = {}


def register_demo(name: str, demo: Demo) -> None:
    """Make ``dataset.demo: <name>`` known."""
    DEMOS[name] = demo


def demo_of(config: Mapping[str, Any]) -> Demo:
    """The registered demo that ``dataset.demo`` names.

    Raises:
        ManifestError: no demo of that name is registered.
    """
    name = config["dataset"]["demo"]
    if name not in DEMOS:
        raise ManifestError(f"dataset.demo is {name!r}; expected one of {sorted(DEMOS)} (demos register when pipeline.demo is imported)")
    return DEMOS[name]


def channel_names(config: Mapping[str, Any]) -> list[str]:
    """Names of the input channels, in order."""
    return [c["name"] for c in config["dataset"]["channels"]]


def label_names(config: Mapping[str, Any]) -> dict[int, str]:
    """``{label value: class name}`` from ``dataset.labels``, sorted by value."""
    return {int(k): str(v) for k, v in sorted(config["dataset"]["labels"].items(), key=lambda kv: int(kv[0]))}


def dataset_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """The cases of the configured dataset: a demo's, a dataset.json's or a manifest's.

    Returns:
        DataFrame indexed by case id with columns ``case``, one per channel (paths),
        ``label`` and ``split`` (``train``/``test``), whatever the source.
    """
    channels = channel_names(config)
    if config["dataset"]["demo"]:
        return demo_of(config).table(config, channels)
    if config["dataset"].get("dataset_json"):
        from pipeline.io.dataset_json import read_dataset_json

        return read_dataset_json(config["dataset"]["dataset_json"], channels)
    if not config["dataset"]["manifest"]:
        raise ManifestError("neither dataset.manifest nor dataset.dataset_json is set (and dataset.demo is null): name a manifest TSV or a dataset.json")
    from pipeline.io.manifest import read_manifest

    return read_manifest(config["dataset"]["manifest"], channels)


def manifest_path(config: Mapping[str, Any]) -> str:
    """The file that lists the cases (the generated manifest for a demo, else dataset.json or the manifest)."""
    demo = config["dataset"]["demo"]
    if demo:
        return f"results/demo/{demo}/manifest.tsv"
    return str(config["dataset"].get("dataset_json") or config["dataset"]["manifest"])


def case_row(config: Mapping[str, Any], case: str) -> pd.Series:
    """The table row of ``case`` (channel paths, label path, split).

    Raises:
        ManifestError: the case is not in the dataset.
    """
    table = dataset_table(config)
    if case not in table.index:
        raise ManifestError(f"case {case!r} is not in the dataset (known: {len(table)} cases, e.g. {list(table.index[:3])})")
    return table.loc[case]
