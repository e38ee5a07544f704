"""Config checks of the landmark and denoising tasks that a JSON schema cannot express."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError


def check_task_settings(config: Mapping[str, Any]) -> None:
    """Landmark experiments need ``dataset.landmarks``; ``init_from`` names another experiment, without cycles.

    Raises:
        ConfigError: naming the experiment, the key and what was expected.
    """
    experiments = config["experiments"]
    for name, settings in experiments.items():
        if settings.get("task") == "landmarks" and not config["dataset"].get("landmarks"):
            raise ConfigError(f"experiments.{name}: task landmarks needs dataset.landmarks, the TSV of landmark coordinates (case, landmark, x, y[, z] in mm)")
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
