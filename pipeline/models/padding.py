"""Pad a batch to a size a network can digest, and crop its outputs back.

Every model in :mod:`pipeline.models` accepts any spatial size: it pads the input with zeros at
the end of each spatial axis up to a multiple of the network's total stride, runs, and crops the
logits back to the input's size. Layout everywhere: ``B C H W`` (2D) or ``B C H W D`` (3D).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def padded_size(size: Sequence[int], divisor: Sequence[int]) -> tuple[int, ...]:
    """Smallest size >= ``size`` that is a multiple of ``divisor`` on every axis.

    If every axis would shrink to a single element at the coarsest level (input no larger than
    the stride on every axis), the first axis is doubled, because instance and batch
    normalisation fail on a 1-element feature map.

    Example: ``padded_size((19, 23), (16, 16)) == (32, 32)``; ``padded_size((5, 5), (8, 8)) == (16, 8)``.
    """
    if len(size) != len(divisor):
        raise ValueError(f"size and divisor need the same length, got {tuple(size)} and {tuple(divisor)}.")
    target = [max(1, math.ceil(n / d)) * d for n, d in zip(size, divisor)]
    if all(t == d for t, d in zip(target, divisor)) and math.prod(divisor) > 1:
        target[0] = 2 * divisor[0]
    return tuple(target)


def pad_to_divisor(x: torch.Tensor, divisor: Sequence[int]) -> torch.Tensor:
    """Zero-pad ``x`` (``B C *spatial``) at the end of each spatial axis up to :func:`padded_size`."""
    spatial = tuple(x.shape[2:])
    target = padded_size(spatial, divisor)
    if target == spatial:
        return x
    pads: list[int] = []
    for n, t in reversed(list(zip(spatial, target))):  # F.pad wants the last axis first
        pads += [0, t - n]
    return F.pad(x, pads)


def crop_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Keep the first ``size`` elements of each spatial axis of ``x`` (``B C *spatial``)."""
    index = (slice(None), slice(None)) + tuple(slice(0, n) for n in size)
    return x[index]


def crop_auxiliary(aux: torch.Tensor, padded: Sequence[int], original: Sequence[int]) -> torch.Tensor:
    """Crop a low-resolution output computed on a padded input to the part that covers the image.

    ``aux`` has spatial size ``padded / r`` for an integer factor ``r`` per axis; the part covering the
    original image is the first ``ceil(original / r)`` elements on that axis.
    """
    keep = []
    for a, p, n in zip(aux.shape[2:], padded, original):
        factor = p // a
        keep.append(math.ceil(n / factor))
    return crop_to(aux, keep)
