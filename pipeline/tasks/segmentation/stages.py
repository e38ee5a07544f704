"""The segmentation task's evaluation and report stages (the workflow's rules call them
through ``python -m pipeline <stage>``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline.atomic import write_tsv
from pipeline.io.dataset import case_row, channel_names, label_names
from pipeline.io.images import image_case_id, read_image
from pipeline.io.regions import paint_values
from pipeline.tasks.base import ReportInputs

log = logging.getLogger(__name__)


def check_config(config: Mapping[str, Any], experiment: str) -> None:
    """Nothing beyond the schema."""


def conventions(config: Mapping[str, Any]) -> Any:
    """The evaluation conventions of the config."""
    from pipeline.evaluation import Conventions

    return Conventions(**config["evaluation"])


def predict_cases(
    config: Mapping[str, Any],
    experiment: str,
    checkpoints: Sequence[str | os.PathLike[str]],
    case_dirs: Sequence[str | os.PathLike[str]],
    outputs: Sequence[str | os.PathLike[str]],
) -> None:
    """Predict preprocessed cases with the fold ensemble, loaded once (``outputs[i]`` for ``case_dirs[i]``)."""
    from pipeline.tasks.segmentation.predict import Predictor

    predictor = Predictor(checkpoints, config["experiments"][experiment]["inference"])
    for case_dir, output in zip(case_dirs, outputs):
        predictor(case_dir, output)
        log.info("wrote %s", output)


def evaluation_reference(config: Mapping[str, Any], row: pd.Series) -> list[str]:
    """The reference label map of the case (its dataset table ``row``); none for an
    unlabelled case, which is then predicted but not scored."""
    return [row["label"]] if row["label"] else []


def evaluate_case(config: Mapping[str, Any], experiment: str, case: str, prediction: str | os.PathLike[str], output: str | os.PathLike[str]) -> pd.DataFrame:
    """Per-class metrics of one predicted case against its reference label (per region with
    ``dataset.regions``: each region's voxels in both maps).

    Raises:
        CaseError: the prediction is not on the reference's grid (the message names the difference).
    """
    from pipeline.evaluation import evaluate_case as metrics
    from pipeline.io.reorient import align_to_grid

    label = case_row(config, case)["label"]
    reference, ref_geo = read_image(label, case, dtype=np.int64)
    predicted, pred_geo = read_image(prediction, case, dtype=np.int64)
    predicted, _ = align_to_grid(predicted, pred_geo, ref_geo, config["dataset"]["geometry_tolerance"], case, prediction, label)
    regions = config["dataset"].get("regions")
    if regions:  # per region, each as a binary map; the label column is the value the region is painted with
        tables = []
        for region, value in zip(regions, paint_values(regions)):
            ref_mask, pred_mask = (np.isin(a, region["labels"]).astype(np.uint8) for a in (reference, predicted))
            tables.append(
                metrics(ref_mask, pred_mask, ref_geo.spacing_numpy, {0: "background", 1: region["name"]}, conventions(config), case_id=case).assign(label=value)
            )
        table = pd.concat(tables, ignore_index=True)
    else:
        table = metrics(reference, predicted, ref_geo.spacing_numpy, label_names(config), conventions(config), case_id=case)
    write_tsv(output, table)
    return table


def report(config: Mapping[str, Any], experiment: str, inputs: ReportInputs) -> None:
    """Write the experiment's self-contained HTML report; the predictions (test cases'
    ``<case>.nii.gz``) feed the gallery of the worst cases (``report.worst_cases``), drawn on
    their images with their labels (from the inputs, or else from the dataset table)."""
    from pipeline.reporting.overlays import CaseFiles
    from pipeline.reporting.report import write_experiment_report

    files = {}
    for i, prediction in enumerate(inputs.predictions):
        case = image_case_id(prediction)
        row = case_row(config, case) if not (inputs.images and inputs.labels) else None
        image = inputs.images[i] if inputs.images else row[channel_names(config)[0]]
        files[case] = CaseFiles(case, image, inputs.labels[i] if inputs.labels else row["label"], prediction)
    write_experiment_report(
        inputs.results(config, experiment),
        plan=inputs.plan,
        conventions=conventions(config),
        output=inputs.output,
        case_files=files or None,
        worst_cases=config["report"]["worst_cases"],
    )


def compare(
    config: Mapping[str, Any], experiments: Sequence[str], per_case: Sequence[str], summaries: Sequence[str], output: str | os.PathLike[str]
) -> pd.DataFrame:
    """Write ``reports/index.html``: experiments side by side, paired tests, ranking."""
    from pipeline.reporting.compare import write_comparison

    return write_comparison(
        dataset=config["dataset"]["name"],
        per_case={e: pd.read_csv(p, sep="\t", dtype={"case": str}) for e, p in zip(experiments, per_case)},
        summaries={e: pd.read_csv(p, sep="\t") for e, p in zip(experiments, summaries)},
        output=output,
    )
