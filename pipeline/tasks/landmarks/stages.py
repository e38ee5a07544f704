"""The landmark task's stages: prediction, evaluation, report and comparison, called through
``python -m pipeline <stage>``; each takes the validated config and explicit paths."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.atomic import write_tsv
from pipeline.errors import ConfigError
from pipeline.io.dataset import case_row, channel_names
from pipeline.tasks.base import ReportInputs

log = logging.getLogger(__name__)


def check_config(config: Mapping[str, Any], experiment: str) -> None:
    """A landmark experiment needs ``dataset.landmarks``.

    Raises:
        ConfigError: naming the experiment and the key.
    """
    if not config["dataset"].get("landmarks"):
        raise ConfigError(
            f"experiments.{experiment}: task landmarks needs dataset.landmarks, the TSV of landmark coordinates (case, landmark, x, y[, z] in mm)"
        )


def predict_cases(config: Mapping[str, Any], experiment: str, checkpoints: Sequence[str], case_dirs: Sequence[str], outputs: Sequence[str]) -> None:
    """Predict the landmarks of preprocessed cases with the fold ensemble (loaded once); write one TSV (mm) per case."""
    from pipeline.inference.ensemble import Ensemble
    from pipeline.tasks.landmarks.configuration import stored_configuration
    from pipeline.tasks.landmarks.models import build_landmark_network
    from pipeline.tasks.landmarks.predict import Locator

    settings = config["experiments"][experiment]
    ensemble = Ensemble.load(checkpoints, build_landmark_network, "landmarks", {**settings["inference"], "compile": False})
    arch = ensemble.state["architecture"]
    configuration = stored_configuration(ensemble.state, arch["landmarks"], f"checkpoint {checkpoints[0]}")
    if configuration is None:
        log.warning("checkpoint %s holds no landmark configuration (trained by an older version): each landmark is its channel's maximum", checkpoints[0])
    locator = Locator(ensemble.models, arch, settings["landmarks"], configuration, settings["inference"]["overlap"], 2, ensemble.device, ensemble.amp)
    for case_dir, output in zip(case_dirs, outputs):
        write_tsv(output, locator.predict_case(case_dir))
        log.info("wrote %s", output)


def evaluation_reference(config: Mapping[str, Any], row: pd.Series) -> list[str]:
    """The landmark table (``dataset.landmarks``)."""
    return [str(config["dataset"]["landmarks"])]


def evaluate_case(config: Mapping[str, Any], experiment: str, case: str, prediction: str | os.PathLike[str], output: str | os.PathLike[str]) -> pd.DataFrame:
    """Radial errors (mm) of one predicted case against the landmark table; write the table."""
    from pipeline.tasks.landmarks.evaluate import radial_errors
    from pipeline.tasks.landmarks.table import landmark_names, landmark_settings, read_landmarks

    path, declared = landmark_settings(config)
    truth = read_landmarks(path, config["dataset"]["dimensions"], declared)
    predicted = pd.read_csv(prediction, sep="\t", dtype={"case": str, "landmark": str})
    table = radial_errors(predicted, truth, landmark_names(truth, declared), f"landmark table {path}")
    write_tsv(output, table)
    return table


def report(config: Mapping[str, Any], experiment: str, inputs: ReportInputs) -> None:
    """Write ``reports/<experiment>.html`` of a landmark experiment; the predicted test cases
    are drawn on their first-channel images."""
    from pipeline.tasks.landmarks.report import write_landmark_report

    cases = [os.path.basename(p)[: -len(".tsv")] for p in inputs.predictions]
    images = dict(zip(cases, inputs.images)) if inputs.images else {c: case_row(config, c)[channel_names(config)[0]] for c in cases}
    write_landmark_report(inputs.results(config, experiment), images, inputs.output, config["report"]["worst_cases"])


def compare(
    config: Mapping[str, Any], experiments: Sequence[str], per_case: Sequence[str], summaries: Sequence[str], output: str | os.PathLike[str]
) -> pd.DataFrame:
    """Compare landmark experiments (e.g. heatmap against direct regression) on one page."""
    from pipeline.tasks.landmarks.report import comparison_table, per_landmark_comparison, write_landmark_comparison

    tables = {e: pd.read_csv(p, sep="\t") for e, p in zip(experiments, summaries)}
    table = comparison_table({e: pd.read_csv(p, sep="\t", dtype={"case": str}) for e, p in zip(experiments, per_case)}, tables)
    write_landmark_comparison(table, config["dataset"]["name"], output, per_landmark_comparison(tables))
    return table
