"""The one sliding-window stitcher of every task: Gaussian-blended windows, mirroring and
model ensembles, with the output activation a parameter (softmax for class probabilities,
none for heatmaps and images).

Arrays on the preprocessed grid are ``(C, *spatial)`` float32 (numpy order); outputs are
``(K, *spatial)`` maps on the same grid.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from monai.data.utils import compute_importance_map, dense_patch_slices

from pipeline.models.heads import first_output
from pipeline.runtime import autocast

log = logging.getLogger(__name__)


def window_slices(shape: Sequence[int], patch: Sequence[int], overlap: float) -> list[tuple[slice, ...]]:
    """The windows MONAI's sliding-window inferer visits on a volume of ``shape`` (>= patch):
    steps of ``patch * (1 - overlap)`` voxels, the last window flush with the far edge."""
    interval = [p if p == n else max(int(p * (1 - overlap)), 1) for p, n in zip(patch, shape)]
    return [tuple(slice(int(s.start), int(s.stop)) for s in window) for window in dense_patch_slices(list(shape), list(patch), interval)]


def gaussian_weights(patch: Sequence[int], device: torch.device) -> torch.Tensor:
    """MONAI's Gaussian importance map of a window (sigma 1/8 of its size), at least 1e-3."""
    weights = compute_importance_map(tuple(patch), mode="gaussian", sigma_scale=0.125, device=device, dtype=torch.float32)
    return torch.clamp_min(weights, max(float(weights.min()), 1e-3))


@torch.no_grad()
def sliding_window(
    models: Sequence[torch.nn.Module],
    image: np.ndarray,
    patch: Sequence[int],
    overlap: float = 0.5,
    mirror: bool = False,
    batch_size: int = 2,
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
    mirror_axes: Sequence[int] | None = None,
    out_dtype: torch.dtype = torch.float32,
    activation: Literal["softmax", "sigmoid", "none"] = "softmax",
) -> torch.Tensor:
    """Mean over ``models`` (and mirrorings) of the activated outputs of Gaussian-blended windows.

    The windows and weights are MONAI's (``monai.inferers.sliding_window_inference`` with
    ``mode="gaussian"`` gives the same probabilities), but the stitching is leaner: the
    sums are kept in ``out_dtype`` and every model and mirroring of a window is averaged
    before it is added, so memory is one ``(K, *spatial)`` array plus one float32 weight
    map, whatever the ensemble (MONAI stitches in the input's float32 and needs a copy per
    pass; predicting 14 classes on 512x512x300 peaks at 3.7 GB against 5.6 GB with MONAI
    stitching, workflow/benchmarks/bench_inference.py).
    Mirroring flips each window, as nnU-Net does.

    Args:
        models: networks in eval mode mapping ``B C *patch`` to logits ``B K *patch``.
        image: ``(C, *spatial)`` preprocessed intensities; a volume smaller than ``patch``
            is padded with zeros (centred) and the result cropped back.
        patch: window size, numpy order.
        mirror: also average the predictions of each window flipped along every
            combination of ``mirror_axes`` (spatial axes in numpy order, default all;
            2^len(axes) passes per model).
        amp: autocast dtype (bf16/fp16) or None for fp32.
        out_dtype: dtype of the stitched probabilities on the CPU; float16 halves the
            memory of large volumes (relative rounding near 1e-3).
        activation: ``softmax`` over the output channels (class probabilities),
            ``sigmoid`` per channel (region probabilities), or ``none`` (heatmaps, images: the raw outputs are averaged).
    Returns:
        CPU tensor ``(K, *spatial)`` in ``out_dtype``: class probabilities, or the blended outputs.
    """
    if activation not in ("softmax", "sigmoid", "none"):
        raise ValueError(f"activation must be 'softmax', 'sigmoid' or 'none', got {activation!r}")
    if not models:
        raise ValueError("sliding_window needs at least one model")
    device = device or torch.device("cpu")
    with warnings.catch_warnings():  # a read-only memory map: windows are only read from it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.from_numpy(np.asarray(image, dtype=np.float32))
    spatial = tuple(x.shape[1:])
    dims = len(spatial)
    pad = [max(p - n, 0) for p, n in zip(patch, spatial)]
    if any(pad):
        x = torch.nn.functional.pad(x, [side for d in reversed(pad) for side in (d // 2, d - d // 2)])
    padded = tuple(x.shape[1:])
    flips: list[tuple[int, ...]] = [()]
    if mirror:
        axes = [a + 2 for a in (range(dims) if mirror_axes is None else mirror_axes)]
        flips += [c for r in range(1, len(axes) + 1) for c in itertools.combinations(axes, r)]
    weights = gaussian_weights(patch, device)
    weights_cpu = weights.cpu()
    weight_sum = torch.zeros(padded, dtype=torch.float32)
    out: torch.Tensor | None = None
    windows = window_slices(padded, patch, overlap)
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        batch = torch.stack([x[(slice(None), *w)] for w in chunk]).to(device)
        prob: torch.Tensor | None = None
        for model in models:
            for axes in flips:
                with autocast(device, amp):
                    logits = first_output(model(torch.flip(batch, axes) if axes else batch)).float()
                p = torch.softmax(logits, dim=1) if activation == "softmax" else torch.sigmoid(logits) if activation == "sigmoid" else logits
                p = torch.flip(p, axes) if axes else p
                prob = p if prob is None else prob.add_(p)
        assert prob is not None
        prob = (prob.mul_(weights / (len(models) * len(flips)))).to("cpu", out_dtype)
        if out is None:
            out = torch.zeros((prob.shape[1], *padded), dtype=out_dtype)
        for j, w in enumerate(chunk):
            out[(slice(None), *w)] += prob[j]
            weight_sum[w] += weights_cpu
    assert out is not None
    step = max(1, padded[0] // 16)  # in place, in slabs: no temporary of a whole class map
    for k in range(out.shape[0]):
        for start in range(0, padded[0], step):
            out[k, start : start + step].div_(weight_sum[start : start + step])
    crop = tuple(slice(d // 2, d // 2 + n) for d, n in zip(pad, spatial))
    return out[(slice(None), *crop)] if any(pad) else out


#: Above this many bytes of float32 class probabilities, stitch in float16 instead.
FLOAT32_STITCH_LIMIT = 2 * 1024**3


def stitch_dtype(shape: Sequence[int], num_classes: int) -> torch.dtype:
    """float32 for the stitched probabilities, float16 when they would exceed
    :data:`FLOAT32_STITCH_LIMIT` (e.g. 14 classes on a 512x512x300 volume: 4.4 GB)."""
    return torch.float16 if 4 * num_classes * int(np.prod(shape)) > FLOAT32_STITCH_LIMIT else torch.float32
