"""The rerun trigger of each rule: the settings its stage reads, in a canonical form.

Snakemake reruns a job when one of its ``params`` changes. Each function here returns what
one stage reads from the validated config as a JSON string with sorted keys, so reordering
keys in config.yaml reruns nothing. Display names are read only where they are shown:
``dataset.name`` by the report and comparison rules, the class names (the values of
``dataset.labels``) by evaluation, aggregation, report and comparison; the data check,
fingerprint, plan, preprocessing, training and prediction read only the label values, so
renaming a class or the dataset retrains nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.io.label_values import ignore_value
from pipeline.tasks.base import Task

Config = Mapping[str, Any]

#: Keys of ``dataset`` that no data stage reads: the display name and the landmark table
#: and names (read by the landmark task: :data:`TASK_DATASET_KEYS`).
_NOT_DATA = ("name", "labels", "landmarks", "landmark_names", "regions")
#: Keys of ``dataset`` that a task's training and evaluation read, by its ``settings_key``
#: (the table itself is an input file of those rules).
TASK_DATASET_KEYS: dict[str, tuple[str, ...]] = {"landmarks": ("landmark_names",)}


def canonical(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces: the same text for the same settings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def label_values(config: Config) -> list[int]:
    """The label values of ``dataset.labels`` (0..K-1), without their names."""
    return sorted(int(k) for k in config["dataset"]["labels"])


def _data(config: Config) -> dict[str, Any]:
    dataset = config["dataset"]
    return {**{k: v for k, v in dataset.items() if k not in _NOT_DATA}, "label_values": label_values(config), "ignore_label": ignore_value(dataset["labels"])}


def _task_dataset(config: Config, task: Task) -> dict[str, Any]:
    keys = TASK_DATASET_KEYS.get(task.settings_key or "", ())
    return {k: config["dataset"].get(k) for k in keys}


def demo(config: Config) -> str:
    """The demo rules: ``dataset.demo`` and the ``demo`` section."""
    return canonical({"demo": config["dataset"]["demo"], "settings": config["demo"]})


def data(config: Config) -> str:
    """Check, fingerprint and preprocessing of cases: which files, channels, dimensions,
    tolerances and the label values."""
    return canonical(_data(config))


def plan(config: Config) -> str:
    """The plan: the data settings plus the ``plan`` and ``preprocessing`` sections."""
    dataset = {**_data(config), "regions": config["dataset"].get("regions")}  # the plan records the regions
    return canonical({"dataset": dataset, "plan": config["plan"], "preprocessing": config["preprocessing"]})


def training(config: Config, experiment: str, task: Task) -> str:
    """Training of one fold: the experiment's sections that its task's training reads
    (``TASKS[task].training_keys``, and the task's own section ``settings_key``), its task,
    ``init_from``, ``init_part`` and the label values (the number of network outputs)."""
    settings = config["experiments"][experiment]
    keys = {*task.training_keys, *((task.settings_key,) if task.settings_key else ())}
    read = {k: settings.get(k) for k in sorted(keys)}
    return canonical(
        {
            **read,
            "task": task.name,
            "init_from": settings["init_from"],
            "init_part": settings["init_part"],
            "label_values": label_values(config),
            "ignore_label": ignore_value(config["dataset"]["labels"]),  # a class renamed 'ignore' changes the outputs
            "regions": config["dataset"].get("regions"),
            "dataset": _task_dataset(config, task),
        }
    )


def prediction(config: Config, experiment: str, task: Task) -> str:
    """Prediction: ``inference`` without ``cases_per_job`` (which only spreads cases over
    jobs) and the sections of ``TASKS[task].prediction_keys``."""
    settings = config["experiments"][experiment]
    inference = {k: v for k, v in settings["inference"].items() if k != "cases_per_job"}
    return canonical({**{k: settings.get(k) for k in task.prediction_keys}, "inference": inference})


def evaluation(config: Config, task: Task) -> str:
    """Evaluation of a case and the experiment's tables: the ``evaluation`` section and the
    class names."""
    return canonical(
        {
            "evaluation": config["evaluation"],
            "labels": config["dataset"]["labels"],
            "regions": config["dataset"].get("regions"),
            "dataset": _task_dataset(config, task),
        }
    )


def report(config: Config, task: Task) -> str:
    """An experiment's report: the ``report`` section, the dataset's name and the class names."""
    return canonical(
        {"report": config["report"], "name": config["dataset"]["name"], "labels": config["dataset"]["labels"], "dataset": _task_dataset(config, task)}
    )


def compare(config: Config, experiments: list[str]) -> str:
    """The comparison of a task's experiments: the dataset's name and the class names."""
    return canonical({"name": config["dataset"]["name"], "labels": config["dataset"]["labels"], "experiments": list(experiments)})
