"""The interface every task implements (segmentation, landmarks, denoising, ...).

A task is the part of the pipeline that knows what its networks predict: its settings, its
architecture and network, its batches, loss and validation score (through
:class:`pipeline.training.task.TaskTraining`), how it predicts a preprocessed case, how it
scores one case, how it summarises and reports an experiment and compares experiments.
Everything below ``pipeline.tasks`` is task-agnostic; the stages, the CLI and the workflow
find a task in :data:`pipeline.tasks.TASKS` by the experiment's ``task`` key.

Every stage function takes the validated config and explicit paths, so a failed job can be
rerun by hand (``python -m pipeline <stage> ...``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.reporting.results import ExperimentResults

Config = Mapping[str, Any]
Path_ = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class ReportInputs:
    """What an experiment's report is made of.

    Attributes:
        per_case, summary: the experiment's tables (TSV paths).
        logs: the trained folds' ``log.tsv`` paths.
        plan: the plan.
        output: the HTML file to write.
        predictions: the test cases' prediction files; ``images`` and ``labels`` (optional,
            same order): their first-channel images and references, else from the dataset table.
        unscored: test cases of the dataset that are not in the tables, with the reason
            (failed its check; no reference).
        notes: lines on how the experiment was scored (cross-validation without test cases).
    """

    per_case: Path_
    summary: Path_
    logs: Sequence[Path_]
    plan: Mapping[str, Any]
    output: Path_
    predictions: Sequence[str] = ()
    images: Sequence[str] = ()
    labels: Sequence[str] = ()
    unscored: Mapping[str, str] = dataclasses.field(default_factory=dict)
    notes: Sequence[str] = ()

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The per-case table (case ids as text) and the summary."""
        return pd.read_csv(self.per_case, sep="\t", dtype={"case": str}), pd.read_csv(self.summary, sep="\t")

    def training_logs(self) -> dict[str, pd.DataFrame]:
        """The folds' training logs by fold folder name (``fold_<k>``)."""
        from pathlib import Path

        return {Path(p).parent.name: pd.read_csv(p, sep="\t") for p in self.logs}

    def results(self, config: Config, experiment: str) -> ExperimentResults:
        """The experiment's tables, training logs and unscored cases, read."""
        per_case, summary = self.tables()
        return ExperimentResults(experiment, config, per_case, summary, self.training_logs(), dict(self.unscored), list(self.notes))


@dataclasses.dataclass(frozen=True)
class Task:
    """One task's stage functions and what the workflow needs to wire them.

    Attributes:
        name: the experiment's ``task`` value.
        prediction_suffix: ending of ``results/predictions/<experiment>/<case><suffix>``.
        settings_key: the experiment's own config section of this task (``landmarks``,
            ``denoise``), or None.
        training_keys: the experiment's sections that training reads (its rerun trigger).
        prediction_keys: the experiment's sections prediction reads besides ``inference``.
        check_config: ``(config, experiment) -> None``; raises ConfigError.
        training: ``(config, experiment, plan, split, preprocessed) -> TaskTraining`` of
            one fold (:class:`pipeline.training.task.TaskTraining`; the stage trains it with
            :func:`pipeline.training.task.train_task`).
        predict_cases: ``(config, experiment, checkpoints, case_dirs, outputs) -> None``.
        evaluation_reference: ``(config, row) -> [files]`` the evaluation of a case (its
            dataset table row) reads besides the prediction (a label map, the landmark table,
            the preprocessed image).
        evaluate_case: ``(config, experiment, case, prediction, output) -> table``.
        summarize: ``(per_case) -> summary`` table of an experiment.
        report: ``(config, experiment, inputs: ReportInputs) -> None``.
        compare: ``(config, experiments, per_case, summaries, output) -> table`` or None.
        compare_output: the comparison page of this task's experiments.
    """

    name: str
    prediction_suffix: str
    settings_key: str | None
    training_keys: tuple[str, ...]
    prediction_keys: tuple[str, ...]
    check_config: Callable[[Config, str], None]
    training: Callable[..., Any]
    predict_cases: Callable[[Config, str, Sequence[Path_], Sequence[Path_], Sequence[Path_]], None]
    evaluation_reference: Callable[[Config, pd.Series], list[str]]
    evaluate_case: Callable[[Config, str, str, Path_, Path_], pd.DataFrame]
    summarize: Callable[[pd.DataFrame], pd.DataFrame]
    report: Callable[[Config, str, ReportInputs], None]
    compare: Callable[[Config, Sequence[str], Sequence[Path_], Sequence[Path_], Path_], pd.DataFrame] | None
    compare_output: str | None


def lazy(module: str, function: str) -> Callable[..., Any]:
    """``module.function``, imported on the first call: the registry stays light to import
    (the workflow reads it while Snakemake builds the DAG) and loads torch only when a stage runs."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    call.__name__ = call.__qualname__ = function
    call.__doc__ = f"``{module}.{function}``, imported on first use."
    return call


def task_of_modules(
    name: str,
    prediction_suffix: str,
    summarize: str,
    training: str,
    compare_output: str | None = None,
    settings_key: str | None = "",
    training_keys: tuple[str, ...] | None = None,
    prediction_keys: tuple[str, ...] | None = None,
) -> Task:
    """A :class:`Task` of the package ``pipeline.tasks.<name>``: its training is the class
    ``<package>.train.<training>`` (a :class:`~pipeline.training.task.TaskTraining`), its stage
    functions live in ``<package>.stages`` (``check_config``, ``predict_cases``,
    ``evaluation_reference``, ``evaluate_case``, ``report`` and, with a ``compare_output``,
    ``compare``) and the function ``summarize`` (``module:function``), each imported on first
    use. ``settings_key`` defaults to ``name`` (``None``: no section of its own), the training
    keys to ``model``, that section and ``training``, the prediction keys to that section."""
    settings_key = name if settings_key == "" else settings_key
    own = (settings_key,) if settings_key else ()
    training_keys = ("model", *own, "training") if training_keys is None else training_keys
    prediction_keys = own if prediction_keys is None else prediction_keys
    package = f"pipeline.tasks.{name}"
    stages = f"{package}.stages"
    module, function = summarize.split(":")
    return Task(
        name=name,
        prediction_suffix=prediction_suffix,
        settings_key=settings_key,
        training_keys=training_keys,
        prediction_keys=prediction_keys,
        check_config=lazy(stages, "check_config"),
        training=lazy(f"{package}.train", training),
        predict_cases=lazy(stages, "predict_cases"),
        evaluation_reference=lazy(stages, "evaluation_reference"),
        evaluate_case=lazy(stages, "evaluate_case"),
        summarize=lazy(module, function),
        report=lazy(stages, "report"),
        compare=lazy(stages, "compare") if compare_output else None,
        compare_output=compare_output,
    )
