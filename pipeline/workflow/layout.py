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

from pipeline.errors import ConfigError
from pipeline.io.cases import CASE_ID
from pipeline.io.dataset import dataset_table, manifest_path
from pipeline.tasks import TASKS
from pipeline.tasks.base import Task
from pipeline.workflow.cross_validation import held_out_cases, validation_folds
from pipeline.workflow.new_images import predict_inputs, predict_targets
from pipeline.workflow.paths import local_path, made_by_workflow

Config = Mapping[str, Any]


def pipeline_command(basedir: str, python: str) -> str:
    """The command that jobs run stages with: ``PYTHONPATH=<repository> <python> -m pipeline``
    (``python`` is the interpreter running Snakemake, or ``python`` under ``--sdm conda``)."""
    return f"PYTHONPATH={shlex.quote(basedir)} {shlex.quote(python)} -m pipeline"


def _alternatives(values: list[str], nothing: str = "(?!)") -> str:
    """A regular expression matching exactly ``values`` (``(?!)``, which matches nothing, if none)."""
    return "|".join(re.escape(v) for v in values) or nothing


class Layout:
    """What the rules wire, from the validated ``config``.

    Attributes:
        config: the validated config.
        demo: ``dataset.demo`` (None for a user dataset).
        channels: channel names, in order.
        train_cases, test_cases: case ids by split, in manifest order.
        unlabelled: the test cases without a label (predicted, never preprocessed with
            one); a training case must have one.
        experiments: experiment names, in config order.
        chunks: ``(experiment, [cases])`` of every prediction job that handles several
            cases (``inference.cases_per_job`` > 1), any task, each predicted by the same
            checkpoints; experiments sorted by name (the chunk's index names its rule).
        cross_validated: the dataset has no test cases; each experiment is scored on the
            training cases that its trained folds held out, predicted by that fold.
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
        # Without test cases, scored by cross-validation (pipeline/workflow/cross_validation.py).
        self.cross_validated = not self.test_cases
        self._fold_of = validation_folds(self.train_cases, config["plan"]) if self.cross_validated else {}
        labels = dict(zip(cases.index, cases["label"]))
        missing = [c for c in self.train_cases if not labels[c]]
        if missing:
            raise ConfigError(
                f"{len(missing)} training case(s) have no label in {manifest_path(config)}: {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                "give each training case its label, or mark the case split=test to have it predicted without being scored"
            )
        self.unlabelled = [c for c in self.test_cases if not labels[c]]
        self.experiments = list(config["experiments"])
        self._task = {e: self._task_of(e) for e in self.experiments}
        self._case_files = {
            case: [local_path(f) for f in [*channels, *([label] if label else [])]]
            for case, label, *channels in zip(cases.index, cases["label"], *(cases[c] for c in self.channels))
        }
        used = {t.name: t for t in self._task.values()}
        # Files each task's evaluation reads besides the prediction, per evaluated case (from
        # the case's row of the dataset table).
        evaluated = self.test_cases or self.train_cases
        rows = {c: cases.loc[c] for c in evaluated}
        self._references = {
            name: {c: [local_path(str(f)) for f in task.evaluation_reference(config, rows[c])] for c in evaluated} for name, task in used.items()
        }
        # Cases scored per experiment: the test cases its task's evaluation has a reference
        # for, else the training cases its trained folds held out.
        self._scored = {
            e: [
                c
                for c in (
                    held_out_cases(self.train_cases, self._fold_of, config["experiments"][e]["training"]["folds"]) if self.cross_validated else self.test_cases
                )
                if self._references[self._task[e].name][c]
            ]
            for e in self.experiments
        }
        self.chunks: list[tuple[str, list[str]]] = []
        for experiment in sorted(self.experiments):  # numbered the same whatever the key order
            size = config["experiments"][experiment]["inference"]["cases_per_job"]
            for group in self._prediction_groups(experiment):
                self.chunks += [(experiment, group[i : i + size]) for i in range(0, len(group), size)] if size > 1 else []
        reports = {f"reports/{e}.html" for e in self.experiments}
        clash = sorted(reports & {t.compare_output for t in self.tasks.values() if t.compare_output})
        if clash:
            raise ConfigError(f"experiment name(s) {[c[8:-5] for c in clash]} are not allowed: {clash} is a comparison page")
        self.predict_inputs, self.predict_ending = predict_inputs(config, len(self.channels))

    def _prediction_groups(self, experiment: str) -> list[list[str]]:
        """The cases predicted for scoring, in groups that the same checkpoints predict: the
        test cases, or (cross-validation) the held-out cases of each trained fold."""
        if not self.cross_validated:
            return [self.test_cases]
        cases = self._scored[experiment]
        return [[c for c in cases if self._fold_of[c] == k] for k in sorted({self._fold_of[c] for c in cases})]

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
        scored = set(self.scored_experiments())
        per_task = {t.name: sorted(e for e in self.experiments_of(t.name) if e in scored) for t in self.tasks.values() if t.compare_output}
        return [(t.name, t.compare_output, per_task[t.name]) for t in self.tasks.values() if t.compare_output and per_task[t.name]]

    def scored_experiments(self) -> list[str]:
        """The experiments with at least one test case to score, in config order."""
        return [e for e in self.experiments if self.scored_cases(e)]

    def targets(self) -> list[str]:
        """What ``rule all`` asks for: the report and summary of every experiment that has
        test cases to score, the predictions of the test cases it cannot score, each
        task's comparison page and the demo manifest."""
        return [
            *(f"reports/{e}.html" for e in self.scored_experiments()),
            *(f"results/evaluation/{e}/summary.tsv" for e in self.scored_experiments()),
            *(self.prediction(e, c) for e in self.experiments for c in self.test_cases if c not in set(self.scored_cases(e))),
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

    def case_pattern(self, labelled: bool) -> str:
        """Wildcard pattern of the labelled cases (every case id but the unlabelled test
        cases; it must be followed by ``/``) or of the unlabelled ones."""
        if not labelled:
            return _alternatives(self.unlabelled)
        ids = CASE_ID.pattern.strip("^$")
        return f"(?!(?:{_alternatives(self.unlabelled)})/){ids}" if self.unlabelled else ids

    def preprocessed(self, cases: list[str], labels: bool = True) -> list[str]:
        """The preprocessed files that training or prediction reads of ``cases``:
        ``properties.json``, ``image.npy`` and, with ``labels``, ``label.npy`` of the
        labelled ones."""
        unlabelled = set(self.unlabelled)
        files = [f"results/preprocessed/{c}/{name}" for c in cases for name in ("properties.json", "image.npy")]
        return files + ([f"results/preprocessed/{c}/label.npy" for c in cases if c not in unlabelled] if labels else [])

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
        return sorted(f for f in shared if os.path.exists(f) or made_by_workflow(f))

    # Prediction and evaluation

    def prediction(self, experiment: str, case: str) -> str:
        """The prediction file of a test case: ``results/predictions/<experiment>/<case><suffix>``."""
        return f"results/predictions/{experiment}/{case}{self._task[experiment].prediction_suffix}"

    def scored_cases(self, experiment: str) -> list[str]:
        """The cases the experiment is scored on, in manifest order: the test cases that its
        task can score (it has their reference), or, without test cases, the training cases
        that its trained folds held out (cross-validation)."""
        return self._scored[experiment]

    def _scored_passed(self, experiment: str, passed: list[str] | None) -> list[str]:
        # A training case that fails its check stops the fingerprint: only test cases are left out.
        keep = set(self.test_cases if passed is None else passed) | set(self.train_cases)
        return [c for c in self.scored_cases(experiment) if c in keep]

    def predictions(self, experiment: str, passed: list[str] | None = None) -> list[str]:
        """The prediction files of the test cases the experiment is scored on (of those
        that ``passed`` their check, when given)."""
        return [self.prediction(experiment, c) for c in self._scored_passed(experiment, passed)]

    def case_tables(self, experiment: str, passed: list[str] | None = None) -> list[str]:
        """The per-case evaluation tables of the test cases the experiment is scored on
        (of those that ``passed`` their check, when given)."""
        return [f"results/evaluation/{experiment}/cases/{c}.tsv" for c in self._scored_passed(experiment, passed)]

    def test_checks(self) -> list[str]:
        """The check files of the test cases."""
        return [f"results/cases/{c}/check.json" for c in self.test_cases]

    def unbatched_pattern(self) -> str:
        """Wildcard pattern of the experiments predicted one case per job."""
        batched = {e for e, _ in self.chunks}
        return _alternatives([e for e in self.experiments if e not in batched])

    def suffix_pattern(self) -> str:
        """Wildcard pattern of the prediction endings of the tasks in use."""
        return _alternatives(sorted({t.prediction_suffix for t in self._task.values()}))

    def prediction_checkpoints(self, experiment: str, suffix: str, case: str) -> list[str]:
        """The checkpoints that predict ``case`` of ``experiment`` as ``<case><suffix>``: the
        fold ensemble, or (cross-validation) the fold that held the case out.

        Raises:
            ConfigError: ``suffix`` is not the prediction ending of the experiment's task.
        """
        expected = self._task[experiment].prediction_suffix
        if suffix != expected:
            raise ConfigError(f"experiment {experiment!r} ({self._task[experiment].name}) predicts <case>{expected} files, not <case>{suffix}")
        if self.cross_validated and case in self._fold_of:
            return [f"results/models/{experiment}/fold_{self._fold_of[case]}/best.pt"]
        return self.fold_checkpoints(experiment)

    def evaluation_references(self, experiment: str, case: str) -> list[str]:
        """Files the evaluation of a case reads besides the prediction
        (``TASKS[task].evaluation_reference``) that exist or that the workflow makes."""
        files = self._references[self._task[experiment].name][case]
        return [f for f in files if os.path.exists(f) or made_by_workflow(f)]

    def predict_targets(self) -> list[str]:
        """Outputs of the ``predict`` target (:func:`pipeline.workflow.new_images.predict_targets`)."""
        return predict_targets(self.config, self.predict_inputs, self.predict_ending)
