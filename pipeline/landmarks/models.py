"""Networks of the landmark task, both built from an architecture of the model registry.

- ``heatmap``: the registry network itself with one output channel per landmark.
- ``regression``: the registry network's encoder (U-Net/SegNet ``encoder``, DeepLabV3+
  ``backbone``; decoder dropped) and a pooled head: adaptive average pooling to ``2^dim``
  cells, a hidden layer and ``L * dim`` outputs, the offsets of every landmark from the
  centre of the input patch in units of half the patch size (numpy axis order).

Parameter names of the encoder match those of the full network (``encoder.0...``,
``backbone...``), so weights pretrained on another task load by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pipeline.models import build_model
from pipeline.models.padding import pad_to_divisor

METHODS = ("heatmap", "regression")


class CoordinateRegressor(nn.Module):
    """Encoder + pooled head: ``B C *patch`` -> offsets ``B L dim`` (half patch sizes)."""

    def __init__(self, name: str, spatial_dims: int, in_channels: int, num_landmarks: int, hidden: int = 128, **settings: Any) -> None:
        super().__init__()
        network = build_model(name, spatial_dims, in_channels, 1, **settings)
        self.spatial_dims, self.num_landmarks = spatial_dims, num_landmarks
        self.size_divisor = tuple(network.size_divisor)
        if hasattr(network, "backbone"):
            self.backbone = network.backbone
        else:
            self.encoder = network.encoder
            if hasattr(network, "pools"):
                self.pools = network.pools
        with torch.no_grad():  # the width of the deepest features, from a dry run
            width = self.features(torch.zeros(1, in_channels, *(2 * d for d in self.size_divisor))).shape[1]
        pool = nn.AdaptiveAvgPool3d if spatial_dims == 3 else nn.AdaptiveAvgPool2d
        self.head = nn.Sequential(
            pool(2), nn.Flatten(), nn.Linear(width * 2**spatial_dims, hidden), nn.LeakyReLU(0.01), nn.Linear(hidden, num_landmarks * spatial_dims)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest encoder features of ``x`` (padded to the network stride)."""
        x = pad_to_divisor(x, self.size_divisor)
        if hasattr(self, "backbone"):
            return self.backbone(x)[1]
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            if hasattr(self, "pools") and i < len(self.pools):
                x = self.pools[i](x)[0]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Offsets ``B L dim`` of every landmark from the patch centre, in half patch sizes."""
        return self.head(self.features(x)).view(x.shape[0], self.num_landmarks, self.spatial_dims)


def landmark_architecture(experiment: Mapping[str, Any], plan: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """What a landmark checkpoint must match: task, method, model settings, sizes, landmark names."""
    return {
        "task": "landmarks",
        "method": experiment["landmarks"]["method"],
        "model": dict(experiment["model"]),
        "spatial_dims": int(plan["dimensions"]),
        "in_channels": len(plan["channels"]),
        "num_classes": len(names),
        "landmarks": list(names),
        "patch_size": list(plan["patch_size"]),
    }


def build_landmark_network(arch: Mapping[str, Any]) -> nn.Module:
    """The network a :func:`landmark_architecture` dict describes."""
    settings = {k: v for k, v in arch["model"].items() if k != "name"}
    if arch["method"] == "heatmap":
        return build_model(arch["model"]["name"], arch["spatial_dims"], arch["in_channels"], arch["num_classes"], **settings)
    if arch["method"] == "regression":
        return CoordinateRegressor(arch["model"]["name"], arch["spatial_dims"], arch["in_channels"], arch["num_classes"], **settings)
    raise ValueError(f"unknown landmark method {arch['method']!r}; valid: {list(METHODS)}")


def first_output(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """The full-resolution output of a network (deep supervision returns a list)."""
    return output[0] if isinstance(output, (list, tuple)) else output
