"""Render the config schema as the key reference in ``config/README.md``.

``python -m pipeline.config_docs > config/README.md`` regenerates the file; a test checks
that it is current, so the documentation of every key cannot drift from the schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipeline.config import load_schema

INTRO = """# Configuration

`config/config.yaml` describes the experiment (dataset, plan, experiments, evaluation);
runtime settings (cores, memory, GPUs, cluster partition) belong to Snakemake profiles
under `workflow/profiles/`. The file is validated against `workflow/schemas/config.schema.yaml`:
every key left out takes the default below, and an unknown or misspelt key is an error
that names it and suggests the nearest valid key. `snakemake` reads `config/config.yaml` (the
brain demo) only when no `--configfile` is given: `--configfile my.yaml` replaces it, and
several files (`--configfile base.yaml overrides.yaml`) merge with each other, later keys
winning. Override keys for one run with `snakemake --config key=value`; to change a few keys
of the demo, pass it as well: `--configfile config/config.yaml overrides.yaml`.

`experiments` maps a name of your choice (letters, digits, `_`, `-`) to the settings of one
experiment; each experiment is trained, evaluated and reported on its own, and
`{experiment}` is the wildcard of the train, predict, evaluate and report rules.
Experiment keys below are written `experiments.<name>.…`.

This file is generated from the schema: `python -m pipeline.config_docs > config/README.md`.

| key | default | description |
|---|---|---|
"""


def _resolve(schema: dict, registry: Any, root: dict) -> dict:
    ref = schema.get("$ref")
    if not ref:
        return schema
    target = root["$defs"][ref.split("/")[-1]] if ref.startswith("#/") else registry[ref].contents
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def _rows(schema: dict, registry: Any, root: dict, prefix: str) -> Iterator[tuple[str, str, str]]:
    schema = _resolve(schema, registry, root)
    if prefix == "experiments":
        yield prefix, "", schema.get("description", "")
        yield from _rows(schema["additionalProperties"], registry, root, "experiments.<name>")
        return
    for name, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, registry, root)
        key = f"{prefix}.{name}" if prefix else name
        if "properties" in sub or key == "experiments":
            if sub.get("description"):
                yield key, "", sub["description"]
            yield from _rows(sub, registry, root, key)
            continue
        default = json.dumps(sub["default"]) if "default" in sub else "required"
        text = sub.get("description", "")
        if "enum" in sub:
            text += f" One of: {', '.join(str(v) for v in sub['enum'] if v is not None)}."
        yield key, default, text


def render() -> str:
    """The whole ``config/README.md`` text."""
    schema, registry = load_schema()
    lines = [INTRO.rstrip("\n")]
    for key, default, text in _rows(schema, registry, schema, ""):
        cell = " ".join(str(text).split()).replace("|", "\\|")
        lines.append(f"| `{key}` | {'`' + default + '`' if default else ''} | {cell} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.buffer.write(render().encode("utf-8"))
