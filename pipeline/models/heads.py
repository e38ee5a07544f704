"""Heads on the registry's networks for outputs other than a dense map.

``CoordinateRegressor``: a network's encoder (its :attr:`~pipeline.models.base.SegmentationModel.encoder_parts`,
decoder dropped) and a pooled head: adaptive average pooling to ``2^dim`` cells, a hidden
layer and ``L * dim`` outputs, the offsets of every point from the centre of the input patch
in units of half the patch size (numpy axis order). Parameter names of the encoder match
those of the full network (``encoder.0...``, ``backbone...``), so weights pretrained on
another task load by name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.models.padding import pad_to_divisor
from pipeline.models.registry import build_model


class CoordinateRegressor(nn.Module):
    """Encoder + pooled head: ``B C *patch`` -> offsets ``B L dim`` (half patch sizes)."""

    def __init__(self, name: str, spatial_dims: int, in_channels: int, num_points: int, hidden: int = 128, **settings: Any) -> None:
        super().__init__()
        network = build_model(name, spatial_dims, in_channels, 1, **settings)
        self.spatial_dims, self.num_points = spatial_dims, num_points
        self.size_divisor = tuple(network.size_divisor)
        self._encode_padded = type(network).encode_padded  # uses only the modules of encoder_parts
        for part in network.encoder_parts:
            setattr(self, part, getattr(network, part))
        with torch.no_grad():  # the width of the deepest features, from a dry run
            width = self.features(torch.zeros(1, in_channels, *(2 * d for d in self.size_divisor))).shape[1]
        pool = nn.AdaptiveAvgPool3d if spatial_dims == 3 else nn.AdaptiveAvgPool2d
        self.head = nn.Sequential(
            pool(2), nn.Flatten(), nn.Linear(width * 2**spatial_dims, hidden), nn.LeakyReLU(0.01), nn.Linear(hidden, num_points * spatial_dims)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest encoder features of ``x`` (padded to the network stride), computed by the
        source network's own ``encode_padded`` on the parts held here."""
        return self._encode_padded(self, pad_to_divisor(x, self.size_divisor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Offsets ``B L dim`` of every point from the patch centre, in half patch sizes."""
        return self.head(self.features(x)).view(x.shape[0], self.num_points, self.spatial_dims)


def first_output(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """The full-resolution output of a network (deep supervision returns a list)."""
    return output[0] if isinstance(output, (list, tuple)) else output
