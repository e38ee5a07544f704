"""Bundled demo datasets, generated from files that ship inside PyPI wheels (no download).

Importing this package registers the demos with :mod:`pipeline.io.dataset`
(``dataset.demo: brain`` or ``nuclei``); their modules load only when a demo is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.demo.files import demo_frame, write_demo_manifest
from pipeline.errors import SettingError
from pipeline.io.dataset import Demo, register_demo


def _check_channels(name: str, channel: str, channels: list[str]) -> None:
    if channels != [channel]:
        raise SettingError(f"the {name} demo has one channel named {channel!r}; dataset.channels is {channels}")


def _brain_table(config: Mapping[str, Any], channels: list[str]) -> pd.DataFrame:
    from pipeline.demo import brain

    _check_channels("brain", brain.CHANNEL, channels)
    return demo_frame("results/demo/brain", brain.case_ids(config["demo"]["cases"], config["demo"]["test_cases"]), brain.CHANNEL)


def _brain_case(config: Mapping[str, Any], case: str, row: pd.Series) -> None:
    from pipeline.demo import brain

    settings = config["demo"]
    vary = settings.get("vary_acquisition", False) and brain.case_ids(settings["cases"], settings["test_cases"])[case] == "train"
    brain.make_case(int(case.rsplit("_", 1)[1]), row[brain.CHANNEL], row["label"], seed=settings["seed"], spacing_mm=settings["spacing_mm"], vary=vary)


def _brain_manifest(config: Mapping[str, Any], output: str | os.PathLike[str]) -> None:
    from pipeline.demo import brain

    write_demo_manifest(output, brain.case_ids(config["demo"]["cases"], config["demo"]["test_cases"]), brain.CHANNEL)


def _nuclei_table(config: Mapping[str, Any], channels: list[str]) -> pd.DataFrame:
    from pipeline.demo import nuclei

    _check_channels("nuclei", nuclei.CHANNEL, channels)
    if int(config["dataset"]["dimensions"]) != 2:
        raise SettingError(f"the nuclei demo is 2D; set dataset.dimensions to 2 (it is {config['dataset']['dimensions']})")
    settings = config["demo"]
    return demo_frame("results/demo/nuclei", nuclei.case_ids(settings["tile_size"], settings["test_cases"], settings["seed"]), nuclei.CHANNEL)


def _nuclei_case(config: Mapping[str, Any], case: str, row: pd.Series) -> None:
    from pipeline.demo import nuclei

    nuclei.make_case(case, row[nuclei.CHANNEL], row["label"], tile_size=config["demo"]["tile_size"])


def _nuclei_manifest(config: Mapping[str, Any], output: str | os.PathLike[str]) -> None:
    from pipeline.demo import nuclei

    settings = config["demo"]
    write_demo_manifest(output, nuclei.case_ids(settings["tile_size"], settings["test_cases"], settings["seed"]), nuclei.CHANNEL)


register_demo("brain", Demo(_brain_table, _brain_case, _brain_manifest, landmark_table="results/demo/brain/landmarks.tsv"))
register_demo("nuclei", Demo(_nuclei_table, _nuclei_case, _nuclei_manifest))
