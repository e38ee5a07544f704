"""Networks of the landmark task, both built from an architecture of the model registry.

- ``heatmap``: the registry network itself with one output channel per landmark.
- ``regression``: the registry network's encoder and a pooled head
  (:class:`pipeline.models.heads.CoordinateRegressor`) predicting every landmark's offset
  from the centre of the input patch in half patch sizes (numpy axis order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from pipeline.errors import ConfigError
from pipeline.models import build_network
from pipeline.models.heads import CoordinateRegressor
from pipeline.models.registry import resolve_auto

METHODS = ("heatmap", "regression")


def landmark_architecture(experiment: Mapping[str, Any], plan: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """What a landmark checkpoint must match: task, method, model settings, sizes, landmark names."""
    return {
        "task": "landmarks",
        "method": experiment["landmarks"]["method"],
        "model": resolve_auto(experiment["model"], plan),
        "spatial_dims": int(plan["dimensions"]),
        "in_channels": len(plan["channels"]),
        "num_classes": len(names),
        "landmarks": list(names),
        "patch_size": list(plan["patch_size"]),
    }


def build_landmark_network(arch: Mapping[str, Any]) -> nn.Module:
    """The network a :func:`landmark_architecture` dict describes.

    Raises:
        ConfigError: an unknown ``method``.
    """
    if arch["method"] == "heatmap":
        return build_network(arch)
    if arch["method"] == "regression":
        settings = {k: v for k, v in arch["model"].items() if k != "name"}
        return CoordinateRegressor(arch["model"]["name"], arch["spatial_dims"], arch["in_channels"], arch["num_classes"], **settings)
    raise ConfigError(f"unknown landmark method {arch['method']!r}; valid: {list(METHODS)}")
