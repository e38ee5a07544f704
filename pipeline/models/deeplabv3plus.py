"""DeepLabV3+ (Chen et al. 2018) for 2D and 3D images.

Backbone (:mod:`pipeline.models.backbones`, Xception-style or ResNet) with atrous convolution so its
features are at ``output_stride`` (8 or 16) -> ASPP: a 1x1 branch, one 3x3 branch per rate in
``aspp_rates`` and image-level pooling, concatenated and projected by 1x1 -> decoder: upsample to the
stride-4 low-level features, concatenate with their 1x1 reduction, ``decoder_convs`` 3x3
conv-norm-act layers (two, the paper's best; segmentation_models_pytorch uses one), 1x1 classifier,
(bi/tri)linear upsampling to the input size. With ``separable_head`` the 3x3
convolutions of ASPP and decoder are depthwise-separable, as in the paper (cheaper; what
segmentation_models_pytorch does).

Widths scale with ``base_channels`` (b): ASPP and decoder use ``decoder_channels`` or ``8 b`` channels
(256 for b = 32, as in the paper), the low-level reduction ``max(8, 3/16 of that)`` (the paper's 48
beside 256). Layout: ``B C H W [D]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.utils import get_act_layer
from torch import nn

from pipeline.errors import SettingError
from pipeline.models.backbones import ResNetBackbone, SeparableConv, XceptionBackbone
from pipeline.models.base import SegmentationModel
from pipeline.models.interpolate import resize
from pipeline.models.layers import act_layer, check_dropout, choose, conv_norm_act, head

BACKBONES = ("xception", "resnet")
OUTPUT_STRIDES = (8, 16)


class ImagePooling(nn.Module):
    """Image-level ASPP branch: global average -> 1x1 conv (bias, no norm: it sees one value per
    channel, which instance norm cannot normalise) -> activation -> broadcast to the input size."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, activation: str) -> None:
        super().__init__()
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.conv = conv(cin, cout, kernel_size=1)
        self.act = get_act_layer(act_layer(activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)
        return self.act(self.conv(pooled)).expand(-1, -1, *x.shape[2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``B cin *s -> B cout *s``."""

    def __init__(
        self, spatial_dims: int, cin: int, cout: int, rates: Sequence[int], norm: str, activation: str, dropout: float, separable: bool = False
    ) -> None:
        super().__init__()
        a = dict(norm=norm, activation=activation)
        branches: list[nn.Module] = [conv_norm_act(spatial_dims, cin, cout, kernel_size=1, **a)]
        branches += [SeparableConv(spatial_dims, cin, cout, 1, r, **a) if separable else conv_norm_act(spatial_dims, cin, cout, dilation=r, **a) for r in rates]
        branches.append(ImagePooling(spatial_dims, cin, cout, activation))
        self.branches = nn.ModuleList(branches)
        self.project = conv_norm_act(spatial_dims, cout * len(branches), cout, kernel_size=1, dropout=dropout, **a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+; with deep supervision one auxiliary output comes from the ASPP features."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        num_classes: int,
        backbone: str = "xception",
        base_channels: int = 16,
        output_stride: int = 16,
        aspp_rates: Sequence[int] = (6, 12, 18),
        xception_middle_blocks: int = 4,
        resnet_blocks: Sequence[int] = (2, 2, 2, 2),
        decoder_channels: int | None = None,
        decoder_convs: int = 2,
        separable_head: bool = False,
        norm: str = "instance",
        activation: str = "leakyrelu",
        dropout: float = 0.0,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__(spatial_dims, in_channels, num_classes, deep_supervision)
        choose(backbone, BACKBONES, "backbone")
        if output_stride not in OUTPUT_STRIDES:
            raise SettingError(f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {output_stride!r}.")
        if not isinstance(base_channels, int) or base_channels < 1:
            raise SettingError(f"base_channels must be a positive integer, got {base_channels!r}.")
        if isinstance(aspp_rates, (str, bytes)) or not isinstance(aspp_rates, Sequence) or any(not isinstance(r, int) or r < 1 for r in aspp_rates):
            raise SettingError(f"aspp_rates must be a list of positive integer dilation rates, got {aspp_rates!r}.")
        if not isinstance(xception_middle_blocks, int) or xception_middle_blocks < 0:
            raise SettingError(f"xception_middle_blocks must be an integer >= 0, got {xception_middle_blocks!r}.")
        if (
            isinstance(resnet_blocks, (str, bytes))
            or not isinstance(resnet_blocks, Sequence)
            or len(resnet_blocks) != 4
            or any(not isinstance(n, int) or n < 1 for n in resnet_blocks)
        ):
            raise SettingError(f"resnet_blocks must list 4 positive integers (blocks per ResNet stage), got {resnet_blocks!r}.")
        if decoder_channels is not None and (not isinstance(decoder_channels, int) or decoder_channels < 1):
            raise SettingError(f"decoder_channels must be a positive integer or null, got {decoder_channels!r}.")
        if not isinstance(decoder_convs, int) or decoder_convs < 1:
            raise SettingError(f"decoder_convs must be a positive integer, got {decoder_convs!r}.")
        dropout = check_dropout(dropout)
        self.output_stride = output_stride
        a = dict(norm=norm, activation=activation)
        b = base_channels
        if backbone == "xception":
            self.backbone = XceptionBackbone(spatial_dims, in_channels, b, xception_middle_blocks, output_stride, **a)
        else:
            self.backbone = ResNetBackbone(spatial_dims, in_channels, b, resnet_blocks, output_stride, **a)
        width = decoder_channels or 8 * b
        reduced = max(8, 3 * width // 16)
        self.aspp = ASPP(spatial_dims, self.backbone.out_channels, width, aspp_rates, dropout=dropout, separable=separable_head, **a)
        self.reduce_low_level = conv_norm_act(spatial_dims, self.backbone.low_level_channels, reduced, kernel_size=1, **a)
        refine: list[nn.Module] = []
        for i in range(decoder_convs):
            cin = width + reduced if i == 0 else width
            if separable_head:  # as in the paper: depthwise-separable 3x3 convolutions in ASPP and decoder
                refine.append(SeparableConv(spatial_dims, cin, width, 1, 1, **a))
            else:
                refine.append(conv_norm_act(spatial_dims, cin, width, **a))
        if dropout:
            refine.append(nn.Dropout(dropout))
        self.refine = nn.Sequential(*refine)
        self.output = head(spatial_dims, width, num_classes)
        self.aux_head = head(spatial_dims, width, num_classes) if deep_supervision else None

    encoder_parts = ("backbone",)

    @property
    def size_divisor(self) -> tuple[int, ...]:
        return (self.output_stride,) * self.spatial_dims

    def encode_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)[1]

    def forward_padded(self, x: torch.Tensor, with_aux: bool) -> list[torch.Tensor]:
        size = x.shape[2:]
        low, high = self.backbone(x)
        context = self.aspp(high)
        fused = torch.cat([resize(context, low.shape[2:]), self.reduce_low_level(low)], dim=1)
        outputs = [resize(self.output(self.refine(fused)), size)]
        if with_aux and self.aux_head is not None:
            outputs.append(self.aux_head(context))
        return outputs
