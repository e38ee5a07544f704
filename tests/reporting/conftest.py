"""Synthetic report inputs: tiny volumes, their predictions, per-case and summary tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation import Conventions, evaluate_case, summarize
from pipeline.reporting.overlays import CaseFiles
from pipeline.reporting.results import ExperimentResults
from tests.conftest import blob_case, write_volume

LABELS = {0: "background", 1: "liver", 2: "tu<mour>&"}
#: the third id holds HTML special characters; it is also the worst case (class 2 missed)
CASE_IDS = ["case_01", "case_02", 'c<script>alert("x")', "case&04"]
SPACING_ITK = (1.0, 1.0, 2.0)


@dataclasses.dataclass
class ReportInputs:
    """Everything ``write_experiment_report`` needs, built from files in a tmp folder."""

    folder: Path
    per_case: pd.DataFrame
    summary: pd.DataFrame
    files: dict[str, CaseFiles]
    logs: dict[str, pd.DataFrame]
    config: dict

    def results(self, experiment: str = "unet") -> ExperimentResults:
        """The tables and logs as the report reads them."""
        return ExperimentResults(experiment, self.config, self.per_case, self.summary, self.logs)


def predicted(label: np.ndarray, index: int) -> np.ndarray:
    """A prediction with a different kind of error per case index."""
    pred = label.copy()
    if index == 1:
        pred = np.roll(label, 1, axis=2)  # shifted by one voxel
    elif index == 2:
        pred[pred == 2] = 1  # class 2 missed
    elif index == 3:
        pred[1:-1, 2:-2, 2:-2] = np.maximum(pred[1:-1, 2:-2, 2:-2], 1)  # class 1 too large
    return pred


def make_inputs(folder: Path, shift: int = 0) -> ReportInputs:
    """Write the cases' images, references and predictions; evaluate them like the workflow."""
    tables, files = [], {}
    for i, case in enumerate(CASE_IDS):
        image, label = blob_case(shape=(10, 14, 16), seed=i)
        pred = predicted(label, (i + shift) % len(CASE_IDS))
        paths = [folder / kind / f"{case}.nii.gz" for kind in ("images", "labels", "predictions")]
        for path, array in zip(paths, (image, label, pred)):
            write_volume(path, array, spacing=SPACING_ITK)
        files[case] = CaseFiles(case, *(str(p) for p in paths))
        tables.append(evaluate_case(label, pred, SPACING_ITK[::-1], LABELS, Conventions(), case_id=case))
    per_case = pd.concat(tables, ignore_index=True)
    epochs = np.arange(1, 5)
    logs = {
        f"fold_{k}": pd.DataFrame(
            {
                "epoch": epochs,
                "train_loss": 1.0 / epochs + k * 0.1,
                "val_dice_liver": [np.nan, 0.6, np.nan, 0.8],
                "val_dice_tu<mour>&": [np.nan, 0.3, np.nan, 0.5],
                "val_dice_mean": [np.nan, 0.45, np.nan, 0.65],
            }
        )  # fmt: skip
        for k in (0, 1)
    }
    config = {"dataset": {"name": "synthetic <b>blobs</b>"}, "experiments": {"unet": {"model": {"name": "unet"}}}, "report": {"worst_cases": 2}}
    return ReportInputs(folder, per_case, summarize(per_case, n_boot=100), files, logs, config)


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory: pytest.TempPathFactory) -> ReportInputs:
    """Four tiny 3D cases of one experiment (one with HTML special characters in its id)."""
    return make_inputs(tmp_path_factory.mktemp("report_inputs"))


@pytest.fixture(scope="module")
def experiment_report(report_inputs: ReportInputs) -> Path:
    """The experiment report of ``report_inputs``, with a gallery of the 2 worst cases."""
    from pipeline.reporting.report import write_experiment_report

    output = report_inputs.folder / "reports" / "unet.html"
    write_experiment_report(report_inputs.results(), {"patch_size": [8, 8, 8]}, Conventions(), output, case_files=report_inputs.files, worst_cases=2)
    return output
