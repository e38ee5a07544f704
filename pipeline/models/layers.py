"""Shared building blocks and setting checks for the segmentation models.

Convolutions come from MONAI (:class:`monai.networks.blocks.Convolution`), so that 2D and 3D
networks share one code path. Tensor layout: ``B C H W`` (2D) or ``B C H W D`` (3D).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.networks.blocks import Convolution
from torch import nn

from pipeline.errors import SettingError

NORMS: dict[str, tuple[str, dict[str, Any]]] = {
    "instance": ("instance", {"affine": True}),
    "batch": ("batch", {}),
}
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "leakyrelu": ("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
    "relu": ("relu", {"inplace": True}),
}


def choose(value: str, options: Sequence[str], setting: str) -> str:
    """Return ``value`` if it is one of ``options``, else raise a ValueError naming both."""
    if value not in options:
        raise SettingError(f"{setting} must be one of {sorted(options)}, got {value!r}.")
    return value


def norm_layer(norm: str) -> tuple[str, dict[str, Any]]:
    """MONAI norm specification for ``norm`` ('instance' or 'batch')."""
    return NORMS[choose(norm, list(NORMS), "norm")]


def act_layer(activation: str) -> tuple[str, dict[str, Any]]:
    """MONAI activation specification for ``activation`` ('leakyrelu' or 'relu')."""
    return ACTIVATIONS[choose(activation, list(ACTIVATIONS), "activation")]


def check_dropout(dropout: float) -> float:
    """Return ``dropout`` if it is a probability in [0, 1)."""
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise SettingError(f"dropout must be a probability in [0, 1), got {dropout!r}.")
    return float(dropout)


def check_channels(channels: Sequence[int], minimum_levels: int = 2) -> list[int]:
    """Return ``channels`` as a list if it holds at least ``minimum_levels`` positive integers."""
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise SettingError(f"channels must be a list of positive integers, got {channels!r}.")
    if len(channels) < minimum_levels or any(not isinstance(c, int) or c < 1 for c in channels):
        raise SettingError(f"channels must list at least {minimum_levels} positive integers (one per resolution level), got {list(channels)!r}.")
    return list(channels)


def per_level(
    value: int | Sequence[int | Sequence[int]] | None,
    levels: int,
    spatial_dims: int,
    setting: str,
    default: int,
    what: str = "one per level",
) -> list[tuple[int, ...]]:
    """Expand ``value`` to one per-axis tuple per level.

    ``value`` may be None (``default`` everywhere), an int (the same everywhere), or a list of
    ``levels`` entries that are each an int or a list of ``spatial_dims`` ints (anisotropic).
    Example: ``per_level([2, [2, 2, 1]], 2, 3, "strides", 2) == [(2, 2, 2), (2, 2, 1)]``.
    """
    if value is None:
        value = default
    if isinstance(value, int):
        entries: list[Any] = [value] * levels
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == levels:
        entries = list(value)
    else:
        count = f" ({len(value)} entries)" if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else ""
        raise SettingError(f"{setting} must be an integer or a list of {levels} entries ({what}), got {value!r}{count}.")
    result = []
    for entry in entries:
        axes = (entry,) * spatial_dims if isinstance(entry, int) else tuple(entry)
        if len(axes) != spatial_dims or any(not isinstance(a, int) or a < 1 for a in axes):
            raise SettingError(f"each {setting} entry must be a positive integer or a list of {spatial_dims} positive integers, got {entry!r} in {value!r}.")
        result.append(axes)
    return result


def level_layout(
    channels: Sequence[int], strides: int | Sequence[int | Sequence[int]] | None, kernel_size: int | Sequence[int | Sequence[int]], spatial_dims: int
) -> tuple[list[int], list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Checked widths per level, strides between levels and odd kernel sizes per level and axis."""
    channels = check_channels(channels)
    levels = len(channels)
    level_strides = per_level(
        strides, levels - 1, spatial_dims, "strides", default=2, what=f"one per step between the {levels} levels of channels {channels}: len(channels) - 1"
    )
    kernels = per_level(kernel_size, levels, spatial_dims, "kernel_size", default=3, what=f"one per level of channels {channels}: len(channels)")
    if any(k % 2 == 0 for kernel in kernels for k in kernel):
        raise SettingError(f"kernel_size entries must be odd, got {kernel_size!r}.")
    return channels, level_strides, kernels


def check_aux_heads(heads: int, channels: Sequence[int]) -> int:
    """``deep_supervision_heads``: 1 to ``len(channels) - 2`` (aux heads sit on decoder levels 1..L-2)."""
    levels = len(channels)
    if not isinstance(heads, int) or isinstance(heads, bool) or not 1 <= heads <= levels - 2:
        raise SettingError(
            f"deep_supervision_heads must be an integer from 1 to len(channels) - 2 = {levels - 2} "
            f"(aux heads sit on decoder levels 1..{levels - 2}), got {heads!r} "
            f"with channels={list(channels)}; lower deep_supervision_heads or add levels."
        )
    return heads


def conv_norm_act(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    norm: str,
    activation: str | None,
    kernel_size: int | Sequence[int] = 3,
    stride: int | Sequence[int] = 1,
    dilation: int = 1,
    groups: int = 1,
    dropout: float = 0.0,
) -> Convolution:
    """Convolution ("same" padding) -> norm -> [dropout] -> activation (None: no activation)."""
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        strides=stride,
        kernel_size=kernel_size,
        dilation=dilation,
        groups=groups,
        norm=norm_layer(norm),
        act=act_layer(activation) if activation is not None else None,
        dropout=dropout if dropout > 0 else None,
        bias=False,
    )


def head(spatial_dims: int, in_channels: int, num_classes: int) -> nn.Module:
    """1x1 convolution (with bias) mapping features to class logits."""
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    return conv(in_channels, num_classes, kernel_size=1)
