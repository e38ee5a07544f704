"""The experiment configuration: validated against the JSON schema, defaults filled in.

The schema lives in ``workflow/schemas/config.schema.yaml`` (with the model, loss and
evaluation sections in sibling files it references). Every key has a ``default:`` that
is written into the config when the user leaves it out, and every object forbids unknown
keys, so a misspelt key is an error that names it and suggests the nearest valid one.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pipeline.errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "workflow" / "schemas"
MAIN_SCHEMA = "config.schema.yaml"


def _load_yaml(path: Path) -> Any:
    """YAML, or JSON for ``.json`` files (YAML 1.1 would read ``3e-05`` as a string)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle) if path.suffix == ".json" else yaml.safe_load(handle)


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


def _describe(error: jsonschema.ValidationError) -> str:
    """One clear sentence for a schema violation, naming the key and what was expected."""
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in extra:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parts.append(f"unknown key {key!r} in {where}{hint}")
        return "; ".join(parts) + f" (valid keys: {', '.join(allowed)})"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        return f"{where}: {error.instance!r} has the wrong type, expected {error.validator_value}"
    return f"{where}: {error.message}"


def validate_config(config: Mapping[str, Any], schema_dir: Path = SCHEMA_DIR) -> dict:
    """Validate ``config`` and return a deep copy with every default filled in.

    Raises:
        ConfigError: listing every problem, each naming the key path and what was expected.
    """
    schema, registry = load_schema(schema_dir)
    filled = copy.deepcopy(dict(config))
    from pipeline.io.dataset_json import check_config as check_dataset_json, fill_config as fill_from_dataset_json

    fill_from_dataset_json(filled)  # channels/labels left out are taken from dataset.json
    dataset = filled.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("labels"), dict):
        # YAML reads `0: background` with an integer key; JSON has only string keys.
        dataset["labels"] = {str(k): v for k, v in dataset["labels"].items()}
    validator = _DefaultFillingValidator(schema, registry=registry)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem(s)):\n{lines}")
    _check_consistency(filled)
    check_dataset_json(filled)
    return filled


def _check_consistency(config: dict) -> None:
    """Checks across keys that a JSON schema cannot express."""
    labels = config["dataset"]["labels"]
    keys = sorted(int(k) for k in labels)
    if keys != list(range(len(keys))):
        raise ConfigError(f"dataset.labels: label values must be 0..K-1 with 0 the background, got {keys}")
    folds = config["plan"]["folds"]
    for name, experiment in config["experiments"].items():
        bad = [f for f in experiment["training"]["folds"] if f >= folds]
        if bad:
            raise ConfigError(f"experiments.{name}.training.folds: fold(s) {bad} do not exist; plan.folds is {folds}, so folds are 0..{folds - 1}")
    from pipeline.landmarks.checks import check_task_settings

    check_task_settings(config)  # landmarks need dataset.landmarks; init_from names another experiment


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a YAML config file, merge ``overrides`` (nested dicts) and validate it."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist")
    try:
        raw = _load_yaml(p) or {}
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise ConfigError(f"config file {p} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys, got {type(raw).__name__}")
    return validate_config(merge(raw, overrides or {}))


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """Recursively merge ``update`` into a copy of ``base`` (dicts merge, others replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def label_names(config: Mapping[str, Any]) -> dict[int, str]:
    """``{label value: class name}`` from ``dataset.labels``, sorted by value."""
    return {int(k): str(v) for k, v in sorted(config["dataset"]["labels"].items(), key=lambda kv: int(kv[0]))}
