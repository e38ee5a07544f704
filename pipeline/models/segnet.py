"""SegNet (Badrinarayanan et al. 2017) for 2D/3D: max-pooling encoder, max-unpooling decoder.

Encoder level ``i`` has ``convs_per_stage`` conv-norm-act layers producing ``channels[i]``
features, followed (except at the deepest level) by max pooling with kernel = stride =
``strides[i]`` that remembers the argmax indices. Decoder level ``j`` (deepest first) applies
``convs_per_stage`` conv-norm-act layers whose last one reduces to ``channels[j-1]`` features, then
max-unpools by level ``j-1``'s indices. No skip connections carry features; only the indices.
Layout: ``B C H W [D]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.errors import SettingError
from pipeline.models.base import SegmentationModel
from pipeline.models.layers import check_aux_heads, check_dropout, conv_norm_act, head, level_layout


def conv_stack(spatial_dims: int, in_channels: int, out_channels: int, count: int, kernel: Sequence[int], settings: dict) -> nn.Sequential:
    """``count`` conv-norm-act layers at ``in_channels`` width; the last one maps to ``out_channels``."""
    layers = [conv_norm_act(spatial_dims, in_channels, in_channels, kernel_size=kernel, **settings) for _ in range(count - 1)]
    layers.append(conv_norm_act(spatial_dims, in_channels, out_channels, kernel_size=kernel, **settings))
    return nn.Sequential(*layers)


class SegNet(SegmentationModel):
    """SegNet with configurable depth, widths, pooling strides and convolutions per stage."""

    encoder_parts = ("encoder", "pools")

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (32, 64, 128, 256, 320),
        strides: int | Sequence[int | Sequence[int]] | None = None,
        kernel_size: int | Sequence[int | Sequence[int]] = 3,
        convs_per_stage: int = 2,
        norm: str = "instance",
        activation: str = "leakyrelu",
        dropout: float = 0.0,
        deep_supervision: bool = False,
        deep_supervision_heads: int = 2,
    ) -> None:
        super().__init__(spatial_dims, in_channels, num_classes, deep_supervision)
        channels, self.strides, kernels = level_layout(channels, strides, kernel_size, spatial_dims)
        levels = len(channels)
        if not isinstance(convs_per_stage, int) or convs_per_stage < 1:
            raise SettingError(f"convs_per_stage must be a positive integer, got {convs_per_stage!r}.")
        settings = dict(norm=norm, activation=activation, dropout=check_dropout(dropout))
        self.encoder = nn.ModuleList()
        for i, width in enumerate(channels):
            source = in_channels if i == 0 else channels[i - 1]
            first = conv_norm_act(spatial_dims, source, width, kernel_size=kernels[i], **settings)
            rest = [conv_norm_act(spatial_dims, width, width, kernel_size=kernels[i], **settings) for _ in range(convs_per_stage - 1)]
            self.encoder.append(nn.Sequential(first, *rest))
        pool = nn.MaxPool3d if spatial_dims == 3 else nn.MaxPool2d
        unpool = nn.MaxUnpool3d if spatial_dims == 3 else nn.MaxUnpool2d
        self.pools = nn.ModuleList(pool(kernel_size=s, stride=s, return_indices=True) for s in self.strides)
        self.unpools = nn.ModuleList(unpool(kernel_size=s, stride=s) for s in self.strides)
        # decoder[j] runs at level j; for j >= 1 its output has channels[j - 1] features (to unpool).
        self.decoder = nn.ModuleList(
            [conv_stack(spatial_dims, channels[0], channels[0], convs_per_stage, kernels[0], settings)]
            + [conv_stack(spatial_dims, channels[j], channels[j - 1], convs_per_stage, kernels[j], settings) for j in range(1, levels)]
        )
        self.output = head(spatial_dims, channels[0], num_classes)
        self.aux_heads = nn.ModuleList()
        if deep_supervision:
            check_aux_heads(deep_supervision_heads, channels)
            self.aux_heads.extend(head(spatial_dims, channels[k - 1], num_classes) for k in range(1, deep_supervision_heads + 1))

    def encode_padded(self, x: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            if i < len(self.pools):
                x = self.pools[i](x)[0]
        return x

    def forward_padded(self, x: torch.Tensor, with_aux: bool) -> list[torch.Tensor]:
        indices, sizes = [], []
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            if i < len(self.pools):
                sizes.append(x.shape[2:])
                x, index = self.pools[i](x)
                indices.append(index)
        decoded: dict[int, torch.Tensor] = {}
        for j in reversed(range(1, len(self.encoder))):
            x = self.decoder[j](x)
            decoded[j] = x
            x = self.unpools[j - 1](x, indices[j - 1], output_size=sizes[j - 1])
        x = self.decoder[0](x)
        outputs = [self.output(x)]
        if with_aux:
            outputs += [aux_head(decoded[k + 1]) for k, aux_head in enumerate(self.aux_heads)]
        return outputs
