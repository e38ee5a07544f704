"""The ``predict`` target: new images (``predict.input``) through a trained experiment
(``predict.experiment``), written to ``results/predict/<experiment>/<case><ending>``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.workflow.paths import local_path


def predict_inputs(config: Mapping[str, Any], channels: int) -> tuple[dict[str, list[str]], str]:
    """``({case: [channel files]}, output file ending)`` of ``predict.input`` (none: ``({}, ".nii.gz")``).

    Raises:
        ConfigError: ``predict.input`` names no readable set of cases (the message says why).
    """
    settings = config["predict"]
    if not settings["input"]:
        return {}, ".nii.gz"
    from pipeline.io.inputs import collect_inputs, output_suffix

    try:
        cases = collect_inputs(settings["input"], channels)
    except PipelineError as err:
        raise ConfigError(f"predict.input: {err}") from None
    return {c: [local_path(str(f)) for f in files] for c, files in cases.items()}, output_suffix(next(iter(cases.values()))[0])


def predict_targets(config: Mapping[str, Any], inputs: Mapping[str, list[str]], ending: str) -> list[str]:
    """Outputs of the ``predict`` target.

    Raises:
        ConfigError: ``predict.experiment`` or ``predict.input`` is not set, or the
            experiment does not exist.
    """
    settings = config["predict"]
    if not settings["experiment"] or not settings["input"]:
        raise ConfigError("the predict target needs predict.experiment and predict.input in the config")
    if settings["experiment"] not in config["experiments"]:
        raise ConfigError(f"predict.experiment {settings['experiment']!r} is not one of the experiments {list(config['experiments'])}")
    return [f"results/predict/{settings['experiment']}/{c}{ending}" for c in inputs]
