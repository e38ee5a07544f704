"""Checks of a schema-valid config across keys, which a JSON schema cannot express.

:func:`check_settings` runs in :func:`pipeline.config.validate_config` after the schema:
names given twice, lengths that must match ``dataset.dimensions``, a batch too large for
any memory, and each experiment's model settings, checked by the model registry itself
(:func:`pipeline.models.registry.check_settings`: ``strides``/``kernel_size`` against
``channels``, auxiliary heads, settings of another architecture) on a network with one
feature map per level. Checks that need the images (a patch larger than them) run in the
plan stage (:func:`pipeline.preprocessing.plan.check_patch`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, SettingError
from pipeline.io.label_values import trained_classes


def check_settings(config: Mapping[str, Any], models: bool = True) -> None:
    """Every problem of the config's settings at once; ``models`` false skips the model checks
    (they import the model code, seconds per process).

    Raises:
        ConfigError: listing each problem with its key, the value found and what is valid.
    """
    problems = [*_duplicate_names(config["dataset"]), *_dimension_lengths(config), *_batch_memory(config["plan"]), *_class_weights(config)]
    if models:
        problems += [*_model_settings(config), *_loss_settings(config)]
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


def _twice(names: Sequence[str]) -> list[str]:
    """Names that occur more than once, ignoring case (file and column names on some systems)."""
    seen: dict[str, str] = {}
    twice = []
    for name in names:
        key = str(name).strip().lower()
        if key in seen and seen[key] not in twice:
            twice.append(seen[key])
        seen.setdefault(key, str(name))
    return twice


def _duplicate_names(dataset: Mapping[str, Any]) -> Iterator[str]:
    channels = [c["name"] for c in dataset["channels"]]
    for name in _twice(channels):
        yield f"dataset.channels: channel name {name!r} is given twice ({channels}); each channel needs its own name (a manifest column), case-insensitively"
    labels = {str(k): v for k, v in dataset["labels"].items()}
    for name in _twice(list(labels.values())):
        values = sorted((int(k) for k, v in labels.items() if str(v).strip().lower() == name.strip().lower()))
        yield f"dataset.labels: class name {name!r} is given to values {values}; each class needs its own name (metrics and reports are per name), case-insensitively"
    landmarks = dataset.get("landmark_names") or []
    for name in _twice(landmarks):
        yield f"dataset.landmark_names: {name!r} is listed twice ({list(landmarks)}); each landmark once"


def _dimension_lengths(config: Mapping[str, Any]) -> Iterator[str]:
    dims = config["dataset"]["dimensions"]
    order = "z, y, x" if dims == 3 else "y, x"
    plan = config["plan"]
    if plan["patch_size"] is not None and len(plan["patch_size"]) != dims:
        yield f"plan.patch_size: {plan['patch_size']} has {len(plan['patch_size'])} values, dataset.dimensions is {dims}: give {dims} values ({order}, numpy order) or null"
    if plan["target_spacing"] is not None and len(plan["target_spacing"]) != dims:
        yield f"plan.target_spacing: {plan['target_spacing']} has {len(plan['target_spacing'])} values, dataset.dimensions is {dims}: give {dims} values (x, y{', z' if dims == 3 else ''} in mm) or null"
    for name, experiment in config["experiments"].items():
        axes = experiment["inference"]["mirror_axes"] or []
        bad = [a for a in axes if a >= dims]
        if bad:
            yield f"experiments.{name}.inference.mirror_axes: axis {bad} does not exist in {dims}D images; use axes 0..{dims - 1} ({order}) or null"


def _batch_memory(plan: Mapping[str, Any]) -> Iterator[str]:
    from pipeline.preprocessing.plan import MAX_BATCH_VOXELS

    if plan["patch_size"] and plan["batch_size"]:
        voxels = int(plan["batch_size"]) * int(np.prod(plan["patch_size"]))
        if voxels > MAX_BATCH_VOXELS:
            yield (
                f"plan.batch_size {plan['batch_size']} x plan.patch_size {plan['patch_size']} = {voxels} voxels per training batch, more than {MAX_BATCH_VOXELS} "
                "(2 x 256^3; the network's activations would need tens of GB): lower one of them"
            )


def _model_settings(config: Mapping[str, Any]) -> Iterator[str]:
    from pipeline.models.registry import check_settings as check_model

    dims = config["dataset"]["dimensions"]
    for name, experiment in config["experiments"].items():
        model = dict(experiment["model"])
        try:
            check_model(
                model.pop("name"), dims, model, in_channels=len(config["dataset"]["channels"]), num_classes=trained_classes(config["dataset"]["labels"])
            )
        except SettingError as err:
            yield f"experiments.{name}.model ({experiment['model']['name']}, {dims}D): {err}"


def _segmentation(config: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(name, settings)`` of the segmentation experiments (the only ones with a loss and class weights)."""
    for name, experiment in config["experiments"].items():
        if experiment.get("task", "segmentation") == "segmentation":
            yield name, experiment


def _class_weights(config: Mapping[str, Any]) -> Iterator[str]:
    names = list(config["dataset"]["labels"].values())[: trained_classes(config["dataset"]["labels"])]  # the ignore label has none
    for name, experiment in _segmentation(config):
        weights = experiment.get("class_weights")
        if isinstance(weights, list) and config["dataset"].get("regions"):
            yield f"experiments.{name}.class_weights: {weights} do not apply to region training (dataset.regions); set auto or none"
        elif isinstance(weights, list) and len(weights) != len(names):
            yield (
                f"experiments.{name}.class_weights: {weights} has {len(weights)} value(s), dataset.labels declares {len(names)} classes "
                f"({names}): give one weight per class, background first, or auto/none"
            )


def _loss_settings(config: Mapping[str, Any]) -> Iterator[str]:
    from pipeline.losses import build_loss

    for name, experiment in _segmentation(config):
        loss = dict(experiment["loss"])
        weights = experiment.get("class_weights")
        try:
            build_loss(loss.pop("name"), weights if isinstance(weights, list) else None, **loss)
        except SettingError as err:
            yield f"experiments.{name}.loss ({experiment['loss']['name']}): {err}"


def check_init_from(experiments: Mapping[str, Mapping[str, Any]]) -> None:
    """Each ``init_from`` names another experiment of the config, without cycles.

    Raises:
        ConfigError: naming the experiment, the key and what was expected.
    """
    for name, settings in experiments.items():
        source = settings.get("init_from")
        if source is None:
            continue
        if source not in experiments or source == name:
            others = [e for e in experiments if e != name]
            raise ConfigError(f"experiments.{name}.init_from: {source!r} is not another experiment of this config; expected one of {others}")
        seen = [name]
        while source is not None:
            if source in seen:
                raise ConfigError(f"experiments.{name}.init_from: the chain {' -> '.join(seen + [source])} is a cycle")
            seen.append(source)
            source = experiments[source].get("init_from")
