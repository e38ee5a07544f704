"""U-Net built from MONAI's DynUNet blocks, with a choice of decoder upsampling and deep supervision.

Encoder level ``i`` is a MONAI ``UnetBasicBlock`` (or ``UnetResBlock`` with ``residual``): two
conv-norm-act layers, the first strided by ``strides[i-1]`` (level 0 is not strided), as in
nnU-Net / DynUNet. Decoder level ``i`` upsamples level ``i+1`` to ``channels[i]`` features, concatenates
the skip connection and applies the same block type. Layout: ``B C H W [D]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import UpSample
from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetResBlock
from torch import nn

from pipeline.errors import SettingError
from pipeline.models.base import SegmentationModel
from pipeline.models.layers import (
    act_layer,
    check_aux_heads,
    check_dropout,
    choose,
    head,
    level_layout,
    norm_layer,
)

UPSAMPLE_MODES = ("deconv", "nontrainable_nearest", "nontrainable_linear")


def make_upsample(spatial_dims: int, in_channels: int, out_channels: int, scale: Sequence[int], mode: str) -> nn.Module:
    """Upsampling layer ``B in H W [D] -> B out (H W [D] * scale)``.

    ``deconv``: transposed convolution with kernel = stride = ``scale``.
    ``nontrainable_nearest`` / ``nontrainable_linear``: a 1x1 convolution changing the channel count,
    then nearest or (bi/tri)linear interpolation. (Both are linear maps, so 1x1 conv then
    interpolation equals interpolation then 1x1 conv, at a fraction of the cost.)
    """
    choose(mode, UPSAMPLE_MODES, "upsample")
    if mode == "deconv":
        return UpSample(spatial_dims, in_channels, out_channels, scale_factor=scale, mode="deconv", bias=False)
    interp = "nearest" if mode == "nontrainable_nearest" else "linear"
    return UpSample(
        spatial_dims,
        in_channels,
        out_channels,
        scale_factor=scale,
        mode="nontrainable",
        pre_conv="default",
        interp_mode=interp,
        align_corners=None if interp == "nearest" else False,
        bias=False,
    )


class UNet(SegmentationModel):
    """U-Net for 2D/3D segmentation; see module docstring for the layout."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (32, 64, 128, 256, 320),
        strides: int | Sequence[int | Sequence[int]] | None = None,
        kernel_size: int | Sequence[int | Sequence[int]] = 3,
        residual: bool = False,
        norm: str = "instance",
        activation: str = "leakyrelu",
        dropout: float = 0.0,
        upsample: str = "deconv",
        deep_supervision: bool = False,
        deep_supervision_heads: int = 2,
    ) -> None:
        super().__init__(spatial_dims, in_channels, num_classes, deep_supervision)
        channels, self.strides, kernels = level_layout(channels, strides, kernel_size, spatial_dims)
        levels = len(channels)
        choose(upsample, UPSAMPLE_MODES, "upsample")
        if not isinstance(residual, bool):
            raise SettingError(f"residual must be true or false, got {residual!r}.")
        block_type = UnetResBlock if residual else UnetBasicBlock
        common = dict(
            spatial_dims=spatial_dims,
            norm_name=norm_layer(norm),
            act_name=act_layer(activation),
            dropout=check_dropout(dropout) or None,
        )
        self.encoder = nn.ModuleList()
        for i, width in enumerate(channels):
            stride = (1,) * spatial_dims if i == 0 else self.strides[i - 1]
            source = in_channels if i == 0 else channels[i - 1]
            self.encoder.append(block_type(in_channels=source, out_channels=width, kernel_size=kernels[i], stride=stride, **common))
        self.upsamples = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(levels - 1):  # decoder level i receives level i+1
            self.upsamples.append(make_upsample(spatial_dims, channels[i + 1], channels[i], self.strides[i], upsample))
            self.decoder.append(block_type(in_channels=2 * channels[i], out_channels=channels[i], kernel_size=kernels[i], stride=1, **common))
        self.output = head(spatial_dims, channels[0], num_classes)
        self.aux_heads = nn.ModuleList()
        if deep_supervision:
            check_aux_heads(deep_supervision_heads, channels)
            self.aux_heads.extend(head(spatial_dims, channels[k], num_classes) for k in range(1, deep_supervision_heads + 1))

    def encode_padded(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.encoder:
            x = block(x)
        return x

    def forward_padded(self, x: torch.Tensor, with_aux: bool) -> list[torch.Tensor]:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        decoded: list[torch.Tensor] = [torch.empty(0)] * (len(self.encoder) - 1)
        x = skips[-1]
        for i in reversed(range(len(self.decoder))):
            x = self.decoder[i](torch.cat([self.upsamples[i](x), skips[i]], dim=1))
            decoded[i] = x
        outputs = [self.output(decoded[0])]
        if with_aux:
            outputs += [aux_head(decoded[k + 1]) for k, aux_head in enumerate(self.aux_heads)]
        return outputs
