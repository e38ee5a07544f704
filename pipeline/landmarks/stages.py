"""Workflow stages of the landmark task, called by ``workflow/rules/landmarks.smk`` through
``python -m pipeline.landmarks <stage>``; each takes the validated config and explicit paths."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from pipeline.atomic import write_tsv
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)


def experiment_settings(config: Mapping[str, Any], experiment: str, task: str = "landmarks") -> dict[str, Any]:
    """The settings of ``experiment``, checked to be of ``task``."""
    if experiment not in config["experiments"]:
        raise PipelineError(f"experiment {experiment!r} is not in the config (experiments: {list(config['experiments'])})")
    settings = config["experiments"][experiment]
    if settings["task"] != task:
        raise PipelineError(f"experiment {experiment!r} has task {settings['task']!r}, this stage needs task {task!r}")
    return settings


def load_landmark_models(checkpoints: Sequence[str | os.PathLike[str]], device: torch.device) -> tuple[list[torch.nn.Module], dict[str, Any]]:
    """The networks of ``checkpoints`` (eval mode, on ``device``) and their shared architecture."""
    from pipeline.landmarks.models import build_landmark_network
    from pipeline.training.checkpoint import CheckpointError, load_checkpoint, load_model_weights

    models, arch = [], None
    for path in checkpoints:
        state = load_checkpoint(path)
        found = state.get("architecture", {})
        if found.get("task") != "landmarks":
            raise CheckpointError(f"checkpoint {path} is not a landmark model (task {found.get('task', 'segmentation')!r})")
        arch = arch or found
        net = build_landmark_network(arch)
        load_model_weights(net, state, path, arch)
        models.append(net.to(device).eval())
    if arch is None:
        raise PipelineError("no checkpoint given to predict with")
    return models, arch


def predict_case(config: Mapping[str, Any], experiment: str, checkpoints: Sequence[str], case_dir: str, output: str) -> pd.DataFrame:
    """Predict the landmarks of one preprocessed case with the fold ensemble; write the TSV."""
    from pipeline.landmarks.predict import predict_case_landmarks
    from pipeline.training.device import inference_dtype, select_device

    settings = experiment_settings(config, experiment)
    device = select_device()
    models, arch = load_landmark_models(checkpoints, device)
    amp = inference_dtype(device, settings["inference"]["fast"])
    table = predict_case_landmarks(models, arch, case_dir, settings["landmarks"], settings["inference"]["overlap"], 2, device, amp)
    write_tsv(output, table)
    return table


def evaluate(config: Mapping[str, Any], experiment: str, predictions: Sequence[str], per_case_out: str, summary_out: str) -> pd.DataFrame:
    """Radial errors of the predicted test cases against the landmark table; write both tables."""
    from pipeline.landmarks.evaluate import radial_errors, summarize_errors
    from pipeline.landmarks.table import landmark_names, landmark_settings, read_landmarks

    experiment_settings(config, experiment)
    path, declared = landmark_settings(config)
    truth = read_landmarks(path, config["dataset"]["dimensions"], declared)
    predicted = pd.concat([pd.read_csv(p, sep="\t", dtype={"case": str, "landmark": str}) for p in predictions], ignore_index=True)
    per_case = radial_errors(predicted, truth, landmark_names(truth, declared), f"landmark table {path}")
    summary = summarize_errors(per_case)
    write_tsv(per_case_out, per_case)
    write_tsv(summary_out, summary)
    log.info("%s: median radial error %.3f mm over %d points", experiment, summary.iloc[-1]["median"], len(per_case))
    return summary


def report(config: Mapping[str, Any], experiment: str, per_case: str, summary: str, logs: Sequence[str], output: str, images: Sequence[str] = (), cases: Sequence[str] = ()) -> None:
    """Write ``reports/<experiment>.html`` of a landmark experiment (``images``: one per ``cases`` entry)."""
    from pipeline.landmarks.report import read_logs, write_landmark_report

    experiment_settings(config, experiment)
    if len(images) != len(cases):
        raise ValueError(f"report needs one image per case, same order; got {len(images)} image(s) and {len(cases)} case(s)")
    write_landmark_report(
        experiment, config, pd.read_csv(per_case, sep="\t", dtype={"case": str}), pd.read_csv(summary, sep="\t"), read_logs(logs),
        dict(zip(cases, images)), output, config["report"]["worst_cases"],
    )


def compare(config: Mapping[str, Any], experiments: Sequence[str], per_case: Sequence[str], summaries: Sequence[str], output_html: str, output_tsv: str) -> pd.DataFrame:
    """Compare landmark experiments (e.g. heatmap against direct regression); write a TSV and a page."""
    from pipeline.landmarks.report import comparison_table, write_landmark_comparison

    if not len(experiments) == len(per_case) == len(summaries):
        raise ValueError(f"compare needs one per-case table and one summary per experiment; got {len(experiments)}, {len(per_case)}, {len(summaries)}")
    table = comparison_table(
        {e: pd.read_csv(p, sep="\t", dtype={"case": str}) for e, p in zip(experiments, per_case)},
        {e: pd.read_csv(p, sep="\t") for e, p in zip(experiments, summaries)},
    )
    write_tsv(output_tsv, table)
    write_landmark_comparison(table, config["dataset"]["name"], output_html)
    return table


def demo_table(config: Mapping[str, Any], output: str) -> None:
    """Write the brain demo's landmark table."""
    from pipeline.landmarks.demo import write_demo_landmarks

    write_demo_landmarks(config, output)
