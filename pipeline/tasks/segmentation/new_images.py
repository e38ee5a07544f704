"""Prediction on new, unlabelled images with a trained experiment's model folder.

A model folder (``results/models/<experiment>/``) holds everything needed: each
``fold_<k>/best.pt`` carries the network's architecture, its weights, the plan
(spacing, patch size, normalisation, label names) and the experiment's inference
settings, so the folder can be copied to another machine and used there::

    python -m pipeline predict --model results/models/unet_dicece --input scans/ --output out/

Inputs are image files, folders of them and DICOM series folders (:mod:`pipeline.io.inputs`);
outputs are written in the input's format with the input's header (NIfTI in, NIfTI out; a
DICOM series gives NIfTI). After predicting, every case's inputs are checked against the
training fingerprint (:mod:`pipeline.qc`): ``output/qc.tsv`` lists the flags, and each flagged
case gets one ``warning:`` line on stderr. Flags never stop a prediction.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import SettingError
from pipeline.inference.ensemble import fold_checkpoints
from pipeline.io.inputs import check_inputs, check_output_folder, collect_inputs, output_suffix
from pipeline.preprocessing.preprocess import preprocess_case
from pipeline.qc.inputs import TrainingRanges
from pipeline.qc.table import check_predicted_cases, find_fingerprint, load_ranges, warn, write_qc_table
from pipeline.tasks.segmentation.predict import Predictor
from pipeline.training.checkpoint import CheckpointError, load_checkpoint

log = logging.getLogger(__name__)

#: Inference settings of checkpoints that predate a setting.
INFERENCE_DEFAULTS = {"overlap": 0.5, "mirror": False, "fast": True, "compile": False}


def stored_settings(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The plan and experiment settings a checkpoint carries, without reading its weights
    (:func:`~pipeline.training.checkpoint.load_checkpoint` memory-mapped, with its checks).

    Raises:
        CheckpointError: the file is no checkpoint, or one without a plan.
    """
    state = load_checkpoint(checkpoint, mmap=True)
    if "plan" not in state:
        raise CheckpointError(
            f"checkpoint {checkpoint} holds no 'plan' (found the entries {sorted(map(str, state))[:10]}); prediction needs the plan training stores"
        )
    return {"plan": state["plan"], "experiment": state.get("experiment", {})}


def predict_folder(
    model_dir: str | os.PathLike[str],
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    folds: Sequence[int] | None = None,
    device: torch.device | None = None,
    fingerprint: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Preprocess and predict every case of ``source``; return the written files.

    Every input is collected and its header checked (channels, dimensions, one grid per
    case) and the output folder is checked to lie apart from the inputs before any model
    is loaded. Each case is then preprocessed with the plan stored in the checkpoints into
    a temporary folder, predicted with the fold ensemble and written to
    ``output/<case><ending>``. A case whose output already exists is skipped, so an
    interrupted cohort resumes at the first unfinished case. Last, :func:`write_qc` checks
    every case's inputs against the training fingerprint (``fingerprint``, else the one
    :func:`pipeline.qc.table.find_fingerprint` finds for the model folder).

    Raises:
        PipelineError: a missing model folder or fold; ``ManifestError``/``CaseError`` for
            an input (naming the case, the file, what was found and what was expected) or
            an output folder among the inputs.
    """
    checkpoints = fold_checkpoints(model_dir, folds)
    stored = stored_settings(checkpoints[0])
    plan = stored["plan"]
    cases = collect_inputs(source, len(plan["channels"]))
    check_inputs(cases, int(plan["dimensions"]))
    check_output_folder(output, source, cases)
    ranges = qc_ranges(model_dir, fingerprint, plan)
    predictor = Predictor(checkpoints, {**INFERENCE_DEFAULTS, **stored["experiment"].get("inference", {})}, device)
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for case, files in cases.items():
        target = out_dir / f"{case}{output_suffix(files[0])}"
        if target.exists():
            log.info("%s exists, skipping", target)
        else:
            with tempfile.TemporaryDirectory(prefix=f"predict_{case}_") as tmp:
                preprocess_case(case, [str(f) for f in files], None, predictor.plan, tmp)
                predictor(tmp, target)
            log.info("wrote %s", target)
        written.append(target)
    if ranges is not None:
        write_qc(cases, dict(zip(cases, written)), plan, ranges, out_dir / "qc.tsv")
    return written


def qc_ranges(model_dir: str | os.PathLike[str], given: str | os.PathLike[str] | None, plan: dict[str, Any]) -> TrainingRanges | None:
    """The training ranges for the input QC, or None (logged) without a fingerprint of the
    model's channels.

    Raises:
        SettingError: ``given`` is missing, unreadable or of other channels than the model's.
    """
    path = find_fingerprint(model_dir, given)
    if path is None:
        log.warning("no training fingerprint found for model %s (give --fingerprint results/plans/fingerprint.json): no qc.tsv written", model_dir)
        return None
    ranges = load_ranges(path)
    if list(ranges.channels) != list(plan["channels"]):
        problem = f"fingerprint {path} has the channels {list(ranges.channels)}, the model {list(plan['channels'])}: it is not the model's training data"
        if given is not None:
            raise SettingError(problem)
        log.warning("%s; no qc.tsv written", problem)
        return None
    return ranges


def write_qc(cases: dict[str, list[Path]], predictions: dict[str, Path], plan: dict[str, Any], ranges: TrainingRanges, output: str | os.PathLike[str]) -> None:
    """Write the input QC rows of the predicted ``cases`` into ``output`` (rows of other cases
    already there are kept) and one warning line per flagged case to stderr."""
    flags = check_predicted_cases(cases, predictions, ranges, len(plan["channels"]), int(plan["dimensions"]))
    write_qc_table(output, flags, merge=True)
    warn(flags)
    log.info("wrote %s (%d of %d case(s) flagged)", output, sum(1 for f in flags.values() if f), len(flags))
