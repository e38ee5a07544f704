"""(Bi/tri)linear resizing of feature maps as one small matrix product per axis.

``torch.nn.functional.interpolate`` gives the same values (``align_corners=False``), but on the
CPU its channels-first kernel copies a many-channel map to channels-last and back, which cost
DeepLabV3+ about 6 % of a training step (``workflow/benchmarks/bench_models.py --resize``: 3-4x faster
forward + backward for its 8x256x16x16 -> 64x64 upsampling). Linear interpolation is separable:
along each axis the output is ``A @ x`` with ``A`` an ``(n_out, n_in)`` matrix of at most two
non-zero weights per row, so the resize is a chain of matrix products, whose backward is exact
and deterministic on every device (CUDA's interpolate backward uses atomic adds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def interpolation_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(n_out, n_in)`` matrix ``A`` such that ``A @ v`` linearly resamples a length-``n_in``
    signal ``v`` to ``n_out`` samples with PyTorch's weights for ``align_corners=False`` and an
    output size: source coordinate ``(i + 0.5) n_in / n_out - 0.5``, clamped at 0 below and at
    the last sample above. Built per call (microseconds; no cache, which torch.compile would
    have to trace through)."""
    source = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    lower = source.floor().long().clamp(max=n_in - 1)
    upper = (lower + 1).clamp(max=n_in - 1)
    fraction = source - lower
    rows = torch.arange(n_out)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix[rows, lower] += 1 - fraction
    matrix[rows, upper] += fraction
    return matrix.to(dtype=dtype, device=device)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(Bi/tri)linear resize of ``x`` (``B C *spatial``, any number of spatial axes) to ``size``;
    equals ``F.interpolate(x, size, mode="(bi/tri)linear", align_corners=False)`` to float rounding."""
    shape = list(x.shape)
    spatial = len(shape) - 2
    if len(size) != spatial:
        raise ValueError(f"size must give {spatial} spatial lengths for a tensor of shape {tuple(shape)}, got {tuple(size)}.")
    for axis in reversed(range(2, len(shape))):
        n_in, n_out = shape[axis], int(size[axis - 2])
        if n_in == n_out:
            continue
        matrix = interpolation_matrix(n_in, n_out, x.dtype, x.device)
        if axis == len(shape) - 1:
            x = x @ matrix.T  # one matrix product over all rows
        else:  # (rows before, n_in, columns after): the matrix multiplies each slab from the left
            x = matrix @ x.reshape(math.prod(shape[:axis]), n_in, math.prod(shape[axis + 1 :]))
        shape[axis] = n_out
        x = x.reshape(shape)
    return x
