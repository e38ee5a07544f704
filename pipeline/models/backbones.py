"""Encoders for DeepLabV3+: an Xception-style network of depthwise-separable convolutions and a
small ResNet, both 2D/3D, both with atrous (dilated) convolution for a chosen output stride.

Each backbone is a list of stages with nominal strides; :func:`atrous_schedule` turns the strides
that would take the network past ``output_stride`` into dilation instead (as in DeepLab). Both
return ``(low_level, high_level)``: features at stride 4 and at ``output_stride``.
Layout: ``B C H W [D]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.utils import get_act_layer
from torch import nn

from pipeline.models.layers import act_layer, conv_norm_act


def atrous_schedule(strides: Sequence[int], output_stride: int) -> list[tuple[int, int]]:
    """``(stride, dilation)`` per stage so the total stride stops at ``output_stride``.

    Example: ``atrous_schedule([2, 2, 2, 2, 1, 2], 8) == [(2, 1), (2, 1), (2, 1), (1, 2), (1, 2), (1, 4)]``.
    """
    current, dilation, schedule = 1, 1, []
    for stride in strides:
        if current * stride > output_stride:
            dilation *= stride
            stride = 1
        current *= stride
        schedule.append((stride, dilation))
    return schedule


class SeparableConv(nn.Sequential):
    """Depthwise kxk convolution (stride, dilation) -> norm -> pointwise 1x1 -> norm -> activation."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, stride: int, dilation: int, norm: str, activation: str) -> None:
        super().__init__(
            conv_norm_act(spatial_dims, cin, cin, norm, None, stride=stride, dilation=dilation, groups=cin),
            conv_norm_act(spatial_dims, cin, cout, norm, activation, kernel_size=1),
        )


class XceptionBlock(nn.Module):
    """Three separable convolutions (the last strided) plus a (1x1-projected) residual."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, stride: int, dilation: int, norm: str, activation: str) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            SeparableConv(spatial_dims, cin, cout, 1, dilation, norm, activation),
            SeparableConv(spatial_dims, cout, cout, 1, dilation, norm, activation),
            SeparableConv(spatial_dims, cout, cout, stride, dilation, norm, activation),
        )
        self.skip: nn.Module = nn.Identity()
        if cin != cout or stride != 1:
            self.skip = conv_norm_act(spatial_dims, cin, cout, norm, None, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x) + self.skip(x)


class BasicResBlock(nn.Module):
    """ResNet basic block: 3x3 conv-norm-act, 3x3 conv-norm, plus (projected) input, activation."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, stride: int, dilation: int, norm: str, activation: str) -> None:
        super().__init__()
        self.conv1 = conv_norm_act(spatial_dims, cin, cout, norm, activation, stride=stride, dilation=dilation)
        self.conv2 = conv_norm_act(spatial_dims, cout, cout, norm, None, dilation=dilation)
        self.skip: nn.Module = nn.Identity()
        if cin != cout or stride != 1:
            self.skip = conv_norm_act(spatial_dims, cin, cout, norm, None, kernel_size=1, stride=stride)
        self.act = get_act_layer(act_layer(activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


class Backbone(nn.Module):
    """Stages run in order; the output of stage ``low_level_stage`` is the low-level feature map."""

    stages: nn.ModuleList
    low_level_stage: int
    low_level_channels: int
    out_channels: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = x
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.low_level_stage:
                low = x
        return low, x


class XceptionBackbone(Backbone):
    """Aligned-Xception-style encoder with widths in multiples of ``base`` (32 in the paper's stem).

    Entry flow: stem conv (stride 2) -> ``base``, conv -> ``2 base``; blocks to ``4 base`` (stride 4,
    low-level features), ``8 base`` (stride 8), ``16 base`` (stride 16). Middle flow: ``middle_blocks``
    residual blocks at ``16 base``. Exit flow: block to ``24 base`` (stride 32) and a separable
    conv to ``32 base``. Strides past ``output_stride`` become dilation.
    """

    def __init__(self, spatial_dims: int, in_channels: int, base: int, middle_blocks: int, output_stride: int, norm: str, activation: str) -> None:
        super().__init__()
        (s0, d0), (s1, d1), (s2, d2), (s3, d3), (_, d4), (s5, d5) = atrous_schedule([2, 2, 2, 2, 1, 2], output_stride)
        a = dict(norm=norm, activation=activation)
        b = base
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    conv_norm_act(spatial_dims, in_channels, b, stride=s0, dilation=d0, **a),
                    conv_norm_act(spatial_dims, b, 2 * b, dilation=d0, **a),
                ),
                XceptionBlock(spatial_dims, 2 * b, 4 * b, s1, d1, **a),
                XceptionBlock(spatial_dims, 4 * b, 8 * b, s2, d2, **a),
                XceptionBlock(spatial_dims, 8 * b, 16 * b, s3, d3, **a),
                nn.Sequential(*[XceptionBlock(spatial_dims, 16 * b, 16 * b, 1, d4, **a) for _ in range(middle_blocks)]),
                nn.Sequential(
                    XceptionBlock(spatial_dims, 16 * b, 24 * b, s5, d5, **a),
                    SeparableConv(spatial_dims, 24 * b, 32 * b, 1, d5, **a),
                ),
            ]
        )
        self.low_level_stage, self.low_level_channels, self.out_channels = 1, 4 * b, 32 * b


class ResNetBackbone(Backbone):
    """Small ResNet: stem conv (stride 2) -> ``base``; four stages of ``blocks[i]`` basic blocks with
    widths ``base, 2 base, 4 base, 8 base``; the first starts with 3x3 max pooling (stride 2, as in
    ResNet), the others with a strided block (stride 4 after the first stage: low-level features).
    Strides past ``output_stride`` become dilation."""

    def __init__(self, spatial_dims: int, in_channels: int, base: int, blocks: Sequence[int], output_stride: int, norm: str, activation: str) -> None:
        super().__init__()
        schedule = atrous_schedule([2, 2, 2, 2, 2], output_stride)
        a = dict(norm=norm, activation=activation)
        s0, d0 = schedule[0]
        stages: list[nn.Module] = [conv_norm_act(spatial_dims, in_channels, base, stride=s0, dilation=d0, **a)]
        cin = base
        for i, count in enumerate(blocks):
            stride, dilation = schedule[i + 1]
            cout = base * 2**i
            layers: list[nn.Module] = []
            if i == 0 and stride > 1:  # as ResNet: max pooling, not a strided block, after the stem
                pool = nn.MaxPool3d if spatial_dims == 3 else nn.MaxPool2d
                layers, stride = [pool(kernel_size=3, stride=stride, padding=1)], 1
            layers.append(BasicResBlock(spatial_dims, cin, cout, stride, dilation, **a))
            layers += [BasicResBlock(spatial_dims, cout, cout, 1, dilation, **a) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.low_level_stage, self.low_level_channels, self.out_channels = 1, base, cin
