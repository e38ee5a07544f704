"""The files of a run: cases, experiments, prediction chunks, inputs and targets of each rule.

:class:`Layout` is built once from the validated config (``workflow/rules/common.smk``)
and answers every question a rule's input function or target list asks, from tables
computed once (a pandas lookup per job adds up for thousands of cases).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.io.dataset import dataset_table, manifest_path
from pipeline.tasks import TASKS
from pipeline.tasks.base import Task

Config = Mapping[str, Any]


def pipeline_command(basedir: str, python: str) -> str:
    """The command that jobs run stages with: ``PYTHONPATH=<repository> <python> -m pipeline``
    (``python`` is the interpreter running Snakemake, or ``python`` under ``--sdm conda``)."""
    return f"PYTHONPATH={shlex.quote(basedir)} {shlex.quote(python)} -m pipeline"


def _alternatives(values: list[str], nothing: str = "(?!)") -> str:
    """A regular expression matching exactly ``values`` (``(?!)``, which matches nothing, if none)."""
    return "|".join(re.escape(v) for v in values) or nothing


def _made_by_workflow(path: str) -> bool:
    """Whether the workflow writes ``path`` (everything it writes lies under ``results/``)."""
    return os.path.normpath(path).split(os.sep)[0] == "results"


class Layout:
    """What the rules wire, from the validated ``config``.

    Attributes:
        config: the validated config.
        demo: ``dataset.demo`` (None for a user dataset).
        channels: channel names, in order.
        train_cases, test_cases: case ids by split, in manifest order.
        experiments: experiment names, in config order.
        chunks: ``(experiment, [test cases])`` of every prediction job that handles
            several cases (``inference.cases_per_job`` > 1), any task; experiments sorted
            by name (the chunk's index names its rule).
        predict_inputs: ``{case: [channel files]}`` of the ``predict`` target.
        predict_ending: file ending of the ``predict`` target's outputs.
    """

    def __init__(self, config: Config, tasks: Mapping[str, Task] | None = None) -> None:
        self.config = config
        self.tasks = TASKS if tasks is None else tasks
        self.demo: str | None = config["dataset"]["demo"]
        self.channels = [c["name"] for c in config["dataset"]["channels"]]
        cases = dataset_table(config)
        self.train_cases = list(cases.index[cases["split"] == "train"])
        self.test_cases = list(cases.index[cases["split"] == "test"])
        if not self.test_cases:
            raise ConfigError(f"the dataset has no test cases: mark some with split=test in {manifest_path(config)}")
        self.experiments = list(config["experiments"])
        self._task = {e: self._task_of(e) for e in self.experiments}
        self._case_files = {
            case: [*channels, *([label] if label else [])] for case, label, *channels in zip(cases.index, cases["label"], *(cases[c] for c in self.channels))
        }
        self.chunks: list[tuple[str, list[str]]] = []
        for experiment in sorted(self.experiments):  # numbered the same whatever the key order
            size = config["experiments"][experiment]["inference"]["cases_per_job"]
            if size > 1:
                self.chunks += [(experiment, self.test_cases[i : i + size]) for i in range(0, len(self.test_cases), size)]
        used = {t.name: t for t in self._task.values()}
        # Files each task's evaluation reads besides the prediction, per test case (from
        # the case's row of the dataset table).
        rows = {c: cases.loc[c] for c in self.test_cases}
        self._references = {name: {c: [str(f) for f in task.evaluation_reference(config, rows[c])] for c in self.test_cases} for name, task in used.items()}
        reports = {f"reports/{e}.html" for e in self.experiments}
        clash = sorted(reports & {t.compare_output for t in self.tasks.values() if t.compare_output})
        if clash:
            raise ConfigError(f"experiment name(s) {[c[8:-5] for c in clash]} are not allowed: {clash} is a comparison page")
        self.predict_inputs, self.predict_ending = self._predict_inputs()

    def _task_of(self, experiment: str) -> Task:
        name = self.config["experiments"][experiment]["task"]
        if name not in self.tasks:
            raise ConfigError(f"experiments.{experiment}.task: {name!r} is not a task; expected one of {list(self.tasks)}")
        return self.tasks[name]

    # Experiments and tasks

    def task(self, experiment: str) -> Task:
        """The task of ``experiment``."""
        return self._task[experiment]

    def experiment_pattern(self) -> str:
        """Wildcard pattern of the experiment names."""
        return _alternatives(self.experiments)

    def experiments_of(self, task: str) -> list[str]:
        """The experiments of ``task``, in config order."""
        return [e for e in self.experiments if self._task[e].name == task]

    def comparisons(self) -> list[tuple[str, str, list[str]]]:
        """``(task, comparison page, experiments)`` of every task that has a comparison page
        and at least one experiment; the experiments sorted by name, so that reordering
        them in the config reruns nothing."""
        return [
            (t.name, t.compare_output, sorted(self.experiments_of(t.name))) for t in self.tasks.values() if t.compare_output and self.experiments_of(t.name)
        ]

    def targets(self) -> list[str]:
        """What ``rule all`` asks for: every experiment's report and summary, each task's
        comparison page and the demo manifest."""
        return [
            *(f"reports/{e}.html" for e in self.experiments),
            *(f"results/evaluation/{e}/summary.tsv" for e in self.experiments),
            *(page for _, page, _ in self.comparisons()),
            *([f"results/demo/{self.demo}/manifest.tsv"] if self.demo else []),
        ]

    # Cases

    def case_inputs(self, case: str) -> list[str]:
        """Channel and label files of a case that exist, or all of them for a demo (a rule
        makes them). Missing user files are left out, so the check of that case alone fails
        with a clear message instead of the whole DAG."""
        files = self._case_files[case]
        return list(files) if self.demo else [f for f in files if os.path.exists(f)]

    # Training

    def inference_folds(self, experiment: str) -> list[int]:
        """The folds ensembled at inference: ``inference.folds``, else every trained fold."""
        settings = self.config["experiments"][experiment]
        return list(settings["inference"]["folds"] or settings["training"]["folds"])

    def fold_checkpoints(self, experiment: str) -> list[str]:
        """``best.pt`` of every fold ensembled at inference."""
        return [f"results/models/{experiment}/fold_{k}/best.pt" for k in self.inference_folds(experiment)]

    def fold_logs(self, experiment: str) -> list[str]:
        """``log.tsv`` of every trained fold."""
        return [f"results/models/{experiment}/fold_{k}/log.tsv" for k in self.config["experiments"][experiment]["training"]["folds"]]

    def init_checkpoint(self, experiment: str) -> list[str]:
        """``best.pt`` of the lowest trained fold of the experiment that ``init_from`` names
        (nothing without ``init_from``)."""
        source = self.config["experiments"][experiment]["init_from"]
        if not source:
            return []
        return [f"results/models/{source}/fold_{min(self.config['experiments'][source]['training']['folds'])}/best.pt"]

    def training_references(self, experiment: str) -> list[str]:
        """Reference files that training reads directly: those its task's evaluation reads
        for every test case alike (the landmark table). Per-case references (label maps)
        reach training through preprocessing."""
        per_case = [set(files) for files in self._references[self._task[experiment].name].values()]
        shared = set.intersection(*per_case) if per_case else set()
        return sorted(f for f in shared if os.path.exists(f) or _made_by_workflow(f))

    # Prediction and evaluation

    def prediction(self, experiment: str, case: str) -> str:
        """The prediction file of a test case: ``results/predictions/<experiment>/<case><suffix>``."""
        return f"results/predictions/{experiment}/{case}{self._task[experiment].prediction_suffix}"

    def predictions(self, experiment: str) -> list[str]:
        """The prediction files of every test case."""
        return [self.prediction(experiment, c) for c in self.test_cases]

    def unbatched_pattern(self) -> str:
        """Wildcard pattern of the experiments predicted one case per job."""
        batched = {e for e, _ in self.chunks}
        return _alternatives([e for e in self.experiments if e not in batched])

    def suffix_pattern(self) -> str:
        """Wildcard pattern of the prediction endings of the tasks in use."""
        return _alternatives(sorted({t.prediction_suffix for t in self._task.values()}))

    def prediction_checkpoints(self, experiment: str, suffix: str) -> list[str]:
        """The checkpoints that predict a case of ``experiment`` as ``<case><suffix>``.

        Raises:
            ConfigError: ``suffix`` is not the prediction ending of the experiment's task.
        """
        expected = self._task[experiment].prediction_suffix
        if suffix != expected:
            raise ConfigError(f"experiment {experiment!r} ({self._task[experiment].name}) predicts <case>{expected} files, not <case>{suffix}")
        return self.fold_checkpoints(experiment)

    def evaluation_references(self, experiment: str, case: str) -> list[str]:
        """Files the evaluation of a case reads besides the prediction
        (``TASKS[task].evaluation_reference``) that exist or that the workflow makes."""
        files = self._references[self._task[experiment].name][case]
        return [f for f in files if os.path.exists(f) or _made_by_workflow(f)]

    # The `predict` target: new images

    def _predict_inputs(self) -> tuple[dict[str, list[str]], str]:
        settings = self.config["predict"]
        if not settings["input"]:
            return {}, ".nii.gz"
        from pipeline.io.inputs import collect_inputs, output_suffix

        try:
            cases = collect_inputs(settings["input"], len(self.channels))
        except PipelineError as err:
            raise ConfigError(f"predict.input: {err}") from None
        return {c: [str(f) for f in files] for c, files in cases.items()}, output_suffix(next(iter(cases.values()))[0])

    def predict_targets(self) -> list[str]:
        """Outputs of the ``predict`` target.

        Raises:
            ConfigError: ``predict.experiment`` or ``predict.input`` is not set, or the
                experiment does not exist.
        """
        settings = self.config["predict"]
        if not settings["experiment"] or not settings["input"]:
            raise ConfigError("the predict target needs predict.experiment and predict.input in the config")
        if settings["experiment"] not in self.config["experiments"]:
            raise ConfigError(f"predict.experiment {settings['experiment']!r} is not one of the experiments {self.experiments}")
        return [f"results/predict/{settings['experiment']}/{c}{self.predict_ending}" for c in self.predict_inputs]
