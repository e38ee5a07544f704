"""The experiment configuration: validated against the JSON schema, defaults filled in.

This module sits with the stages and the CLI at the top of the package: it checks each
experiment's settings with its task (:mod:`pipeline.tasks`) and registers the demos.

The schema lives in ``workflow/schemas/config.schema.yaml`` (with the model, loss and
evaluation sections in sibling files it references). Every key has a ``default:`` that
is written into the config when the user leaves it out, and every object forbids unknown
keys, so a misspelt key is an error that names it and suggests the nearest valid one.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import pipeline.demo  # noqa: F401  (registers the demo datasets with pipeline.io.dataset)
from pipeline.config_checks import check_settings
from pipeline.config_messages import describe
from pipeline.errors import ConfigError
from pipeline.io.label_values import ignore_value
from pipeline.io.regions import region_problems

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "workflow" / "schemas"
MAIN_SCHEMA = "config.schema.yaml"


#: The largest label value a label file may hold (predictions are written as uint16).
MAX_LABEL_VALUE = 65535

#: Keys that name files: relative paths in a YAML config are relative to its folder (:func:`load_config`).
PATH_KEYS = (("dataset", "manifest"), ("dataset", "dataset_json"), ("dataset", "landmarks"), ("predict", "input"))


def _load_yaml(path: Path) -> Any:
    """YAML, or JSON for ``.json`` files (YAML 1.1 would read ``3e-05`` as a string).

    Raises:
        ConfigError: a key given twice in one mapping (YAML and JSON would keep the last),
            naming the file, the key path and the lines.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text, object_pairs_hook=lambda pairs: _unique_pairs(pairs, path))
    twice = list(_keys_twice(yaml.compose(text, Loader=yaml.SafeLoader), ""))
    if twice:
        raise ConfigError(f"{path}: {'; '.join(twice)} - only the last would count; each key may appear once in its mapping: rename or remove the others")
    return yaml.safe_load(text)


def _keys_twice(node: Any, where: str, seen: set[int] | None = None) -> Iterator[str]:
    """``key (lines a and b)`` for every key given twice in a mapping of the YAML node tree."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else None
            if name is not None and key.tag != "tag:yaml.org,2002:merge":
                path = f"{where}.{name}" if where else name
                if name in lines:
                    yield f"key {path!r} appears twice (lines {lines[name]} and {key.start_mark.line + 1})"
                lines.setdefault(name, key.start_mark.line + 1)
            yield from _keys_twice(value, f"{where}.{name}" if where else str(name), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _keys_twice(item, f"{where}[{index}]", seen)


def _unique_pairs(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"{path}: key(s) {twice} appear twice in one object (next to {sorted(set(keys))}) - only the last would count; give each key once")
    return dict(pairs)


def _fill_demo_landmarks(config: dict) -> None:
    """Landmark experiments on a demo that generates a landmark table use it unless
    ``dataset.landmarks`` names another (the table lies in the working folder, where the
    workflow writes it, whatever folder the config file is in)."""
    from pipeline.io.dataset import DEMOS

    dataset, experiments = config.get("dataset"), config.get("experiments")
    if not isinstance(dataset, dict) or not isinstance(experiments, dict) or dataset.get("landmarks"):
        return
    demo = DEMOS.get(dataset.get("demo") or "")
    if demo and demo.landmark_table and any(isinstance(e, dict) and e.get("task") == "landmarks" for e in experiments.values()):
        dataset["landmarks"] = demo.landmark_table


def resolve_paths(config: Mapping[str, Any], base: str | os.PathLike[str], relative_to: str | os.PathLike[str] | None = None) -> dict:
    """A copy of ``config`` whose relative :data:`PATH_KEYS` paths are resolved against ``base``.

    The results are absolute, or with ``relative_to`` (e.g. the workflow's working folder)
    relative to that folder where they lie inside it (so that they match the workflow's own
    relative file names, such as a demo's ``results/demo/brain/landmarks.tsv``).
    """
    out = copy.deepcopy(dict(config))
    inside = os.path.abspath(relative_to) if relative_to is not None else None
    for section, key in PATH_KEYS:
        part = out.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str) and part[key].strip():
            value = os.path.expanduser(part[key])
            value = os.path.normpath(os.path.join(os.path.abspath(base), value))
            if inside is not None and os.path.commonpath([inside, value]) == inside:
                value = os.path.relpath(value, inside)
            part[key] = value
    return out


def load_schema(schema_dir: Path = SCHEMA_DIR) -> tuple[dict, Registry]:
    """The main schema and a registry that resolves ``$ref: <file>.schema.yaml``."""
    resources = []
    for path in sorted(schema_dir.glob("*.schema.yaml")):
        contents = _load_yaml(path)
        # Without "$schema", jsonschema keeps our default-filling validator class when it
        # follows a $ref into this file (with one, it would switch to the stock class).
        contents.pop("$schema", None)
        resources.append((path.name, Resource(contents=contents, specification=DRAFT202012)))
    registry = Registry().with_resources(resources)
    return registry[MAIN_SCHEMA].contents, registry  # type: ignore[index]


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills ``default:`` values before checking properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Mapping, instance: Any, schema: Mapping) -> Iterator:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "$ref" in subschema and "default" not in subschema:
                    subschema = validator._resolver.lookup(subschema["$ref"]).contents
                if name not in instance and "default" in subschema:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def validate_config(config: Mapping[str, Any], schema_dir: Path = SCHEMA_DIR, check_models: bool = True) -> dict:
    """Validate ``config`` and return a deep copy with every default filled in.

    Relative paths are taken as they are (relative to the working folder); :func:`load_config`
    resolves those of a YAML file against its folder first. ``check_models`` false skips the
    model checks of :func:`pipeline.config_checks.check_settings` (they import the model code).

    Raises:
        ConfigError: listing every problem, each naming the key path and what was expected.
    """
    schema, registry = load_schema(schema_dir)
    filled = copy.deepcopy(dict(config))
    from pipeline.io.dataset_json import check_config as check_dataset_json
    from pipeline.io.dataset_json import fill_config as fill_from_dataset_json

    fill_from_dataset_json(filled)  # channels/labels left out are taken from dataset.json
    _fill_demo_landmarks(filled)
    dataset = filled.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("labels"), dict):
        # YAML reads `0: background` with an integer key; JSON has only string keys.
        keys = [str(k) for k in dataset["labels"]]
        if len(set(keys)) < len(keys):
            raise ConfigError(
                f"dataset.labels: label value(s) {sorted({k for k in keys if keys.count(k) > 1})} are given twice ({list(dataset['labels'])}); give each value once"
            )
        dataset["labels"] = {str(k): v for k, v in sorted(dataset["labels"].items(), key=lambda kv: _int_or_text(kv[0]))}
    bad = list(_non_finite(filled, ""))  # NaN passes every schema bound (comparisons are false)
    if bad:
        raise ConfigError(f"invalid configuration: {', '.join(bad)} - every number must be finite (no .nan, .inf)")
    validator = _DefaultFillingValidator(schema, registry=registry)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {describe(e)}" for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem(s)):\n{lines}")
    _check_consistency(filled)
    check_settings(filled, models=check_models)
    check_dataset_json(filled)
    return filled


def _non_finite(value: Any, where: str) -> Iterator[str]:
    """Key paths under ``where`` whose value is a NaN or infinite number."""
    if isinstance(value, float) and not math.isfinite(value):
        yield f"{where}: {value!r}"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _non_finite(item, f"{where}[{index}]")


def _int_or_text(key: Any) -> tuple[int, Any]:
    """Sort key: label values by number (``"10"`` after ``"2"``), anything else after them (the schema refuses it)."""
    text = str(key)
    return (0, int(text)) if text.isdigit() else (1, text)


def _check_consistency(config: dict) -> None:
    """Checks across keys that a JSON schema cannot express."""
    labels = config["dataset"]["labels"]
    keys = sorted(int(k) for k in labels)
    if keys[0] != 0 or keys[-1] > MAX_LABEL_VALUE:
        raise ConfigError(
            f"dataset.labels: label values {keys} must include 0 (the background) and stay within 0..{MAX_LABEL_VALUE}; values may have gaps (e.g. 0, 2, 5)"
        )
    ignore = ignore_value(labels)
    regions = config["dataset"].get("regions")
    if regions:
        problems = region_problems(regions, labels) + (["dataset.regions cannot be combined with an 'ignore' label yet"] if ignore is not None else [])
        if problems:
            raise ConfigError("; ".join(problems))
    if ignore is not None and (ignore != keys[-1] or len(keys) < 3):
        raise ConfigError(
            f"dataset.labels: the class 'ignore' (unannotated voxels) has value {ignore}; expected the highest value "
            f"of {keys} and at least the background and one class besides it"
        )
    folds = config["plan"]["folds"]
    for name, experiment in config["experiments"].items():
        bad = [f for f in experiment["training"]["folds"] if f >= folds]
        if bad:
            raise ConfigError(f"experiments.{name}.training.folds: fold(s) {bad} do not exist; plan.folds is {folds}, so folds are 0..{folds - 1}")
    from pipeline.config_checks import check_init_from
    from pipeline.tasks import task_of

    for name in config["experiments"]:
        task_of(config, name).check_config(config, name)  # e.g. landmarks need dataset.landmarks
    check_init_from(config["experiments"])


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a config file, merge ``overrides`` (nested dicts) and validate it.

    In a YAML file, relative paths under :data:`PATH_KEYS` (``dataset.manifest``,
    ``dataset.dataset_json``, ``dataset.landmarks``, ``predict.input``) are relative to the
    file's folder; they are stored absolute, so they keep their meaning wherever the config
    is read next. A JSON file is taken as the resolved config the workflow writes
    (``results/config.json``, validated when the workflow wrote it): its relative paths are
    relative to the working folder, where the workflow runs its jobs, and its model
    settings are not checked again. ``overrides`` are not resolved.
    """
    p = Path(path)
    if not p.is_file():
        problem = "is a folder, not a YAML file" if p.is_dir() else "does not exist"
        raise ConfigError(f"config file {p} {problem} (looked for {os.path.abspath(p)})")
    try:
        raw = _load_yaml(p) or {}
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {p} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys, got {type(raw).__name__}")
    resolved = p.suffix != ".json"
    if resolved:
        raw = resolve_paths(raw, p.parent)
    return validate_config(merge(raw, overrides or {}), check_models=resolved)


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """Recursively merge ``update`` into a copy of ``base`` (dicts merge, others replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
