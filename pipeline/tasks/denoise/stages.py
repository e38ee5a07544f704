"""The denoising task's stages: prediction, evaluation and report (``python -m pipeline <stage>``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.atomic import write_tsv
from pipeline.tasks.base import ReportInputs

log = logging.getLogger(__name__)

#: Where the clean image of a test case lies (the reference of its evaluation).
CLEAN_IMAGE = "results/preprocessed/{case}/image.npy"


def check_config(config: Mapping[str, Any], experiment: str) -> None:
    """Nothing beyond the schema."""


def predict_cases(config: Mapping[str, Any], experiment: str, checkpoints: Sequence[str], case_dirs: Sequence[str], outputs: Sequence[str]) -> None:
    """Corrupt and denoise preprocessed cases with the fold ensemble (loaded once); one ``.npz`` per case."""
    from pipeline.inference.ensemble import Ensemble
    from pipeline.models import build_network
    from pipeline.tasks.denoise.evaluate import predict_case

    settings = config["experiments"][experiment]
    ensemble = Ensemble.load(checkpoints, build_network, "denoise", {**settings["inference"], "compile": False})
    patch = ensemble.state["plan"]["patch_size"]
    for case_dir, output in zip(case_dirs, outputs):
        predict_case(ensemble.models, case_dir, settings["denoise"], patch, settings["inference"]["overlap"], output, ensemble.device, ensemble.amp)
        log.info("wrote %s", output)


def evaluation_reference(config: Mapping[str, Any], row: pd.Series) -> list[str]:
    """The clean preprocessed image of the case."""
    return [CLEAN_IMAGE.format(case=row["case"])]


def evaluate_case(config: Mapping[str, Any], experiment: str, case: str, prediction: str | os.PathLike[str], output: str | os.PathLike[str]) -> pd.DataFrame:
    """PSNR and SSIM of one case's corrupted input and denoised output against the clean image."""
    from pipeline.tasks.denoise.evaluate import read_prediction, score_case

    noisy, out = read_prediction(prediction)
    clean = np.load(CLEAN_IMAGE.format(case=case)).astype(np.float32)
    row = score_case(case, clean, noisy, out)
    log.info("%s %s: PSNR %.2f -> %.2f dB, SSIM %.3f -> %.3f", experiment, case, row["psnr_corrupted"], row["psnr"], row["ssim_corrupted"], row["ssim"])
    table = pd.DataFrame([row])
    write_tsv(output, table)
    return table


def report(config: Mapping[str, Any], experiment: str, inputs: ReportInputs) -> None:
    """Write ``reports/<experiment>.html`` of a denoising experiment, with the first test case as an example."""
    from pipeline.tasks.denoise.evaluate import example_figure, read_prediction, write_denoise_report

    figure = None
    if inputs.predictions:
        case = Path(inputs.predictions[0]).name[: -len(".npz")]
        noisy, out = read_prediction(inputs.predictions[0])
        figure = example_figure(case, np.load(CLEAN_IMAGE.format(case=case)), noisy, out)
    write_denoise_report(inputs.results(config, experiment), figure, inputs.output)
