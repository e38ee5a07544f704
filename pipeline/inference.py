"""Inference: sliding-window prediction with Gaussian blending, mirroring and fold ensembles.

Arrays on the preprocessed grid are ``(C, *spatial)`` float32 (numpy order); outputs are
class probabilities ``(K, *spatial)``. :func:`predict_case` takes a preprocessed case to a
label map on the original grid, written with the original header.
"""

from __future__ import annotations

import itertools
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data.utils import compute_importance_map, dense_patch_slices

from pipeline.atomic import atomic_path
from pipeline.io.images import Geometry, image_case_id, write_image
from pipeline.preprocessing.resample import resample_array
from pipeline.preprocessing.inverse import restore_probabilities
from pipeline.training.device import autocast

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
def sliding_window_probabilities(
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
) -> torch.Tensor:
    """Mean softmax over ``models`` (and mirrorings) of Gaussian-blended windows.

    The windows and weights are MONAI's (``monai.inferers.sliding_window_inference`` with
    ``mode="gaussian"`` gives the same probabilities), but the stitching is leaner: the
    sums are kept in ``out_dtype`` and every model and mirroring of a window is averaged
    before it is added, so memory is one ``(K, *spatial)`` array plus one float32 weight
    map, whatever the ensemble (MONAI stitches in the input's float32 and needs a copy per
    pass; predicting 14 classes on 512x512x300 peaks at 3.7 GB against 5.6 GB with MONAI
    stitching, benchmarks/bench_inference.py).
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
    Returns:
        CPU tensor ``(K, *spatial)`` of class probabilities in ``out_dtype``.
    """
    if not models:
        raise ValueError("sliding_window_probabilities needs at least one model")
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
                    logits = model(torch.flip(batch, axes) if axes else batch)
                p = torch.softmax(logits.float(), dim=1)
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


def predict_case(
    models: Sequence[torch.nn.Module],
    folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    patch: Sequence[int],
    settings: Mapping[str, Any],
    num_classes: int,
    batch_size: int = 2,
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
) -> np.ndarray:
    """Predict a preprocessed case and write labels on its original grid and header.

    Args:
        settings: the experiment's ``inference`` section (overlap, mirror, mirror_axes,
            save_probabilities).
        num_classes: output channels of the models (sets the stitching dtype).
    Returns:
        The written label map (numpy order, uint8).
    """
    from pipeline.preprocessing.preprocess import load_properties

    if not isinstance(settings["mirror"], bool):
        raise ValueError(f"inference.mirror must be resolved to true or false before predicting (got {settings['mirror']!r}; see pipeline.stages.decide_mirror)")
    folder = Path(folder)
    properties = load_properties(folder)
    image = np.load(folder / "image.npy", mmap_mode="r")
    out_dtype = stitch_dtype(image.shape[1:], num_classes)
    prob = sliding_window_probabilities(
        models, image, patch, settings["overlap"], settings["mirror"], batch_size, device, amp, settings.get("mirror_axes"), out_dtype
    )
    del image  # unmap the input before the probabilities go back to the original grid
    labels = restore_probabilities((prob[k].float().numpy() for k in range(prob.shape[0])), properties)
    write_image(labels, Geometry.from_dict(properties["original_geometry"]), output)
    if settings.get("save_probabilities"):
        write_probabilities(prob, properties, probabilities_path(output))
    return labels


#: Above this many bytes of float32 class probabilities, stitch in float16 instead.
FLOAT32_STITCH_LIMIT = 2 * 1024**3


def stitch_dtype(shape: Sequence[int], num_classes: int) -> torch.dtype:
    """float32 for the stitched probabilities, float16 when they would exceed
    :data:`FLOAT32_STITCH_LIMIT` (e.g. 14 classes on a 512x512x300 volume: 4.4 GB)."""
    return torch.float16 if 4 * num_classes * int(np.prod(shape)) > FLOAT32_STITCH_LIMIT else torch.float32


def probabilities_path(output: str | os.PathLike[str]) -> Path:
    """``<case>.npz`` beside the prediction ``<case>.nii.gz`` (any image ending)."""
    out = Path(output)
    return out.with_name(image_case_id(out) + ".npz")


def write_probabilities(prob: torch.Tensor, properties: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Class probabilities on the original grid as compressed float16 ``(K, *spatial)``.

    Resampled one class at a time; outside the crop box the background has probability 1.
    """
    resampled = Geometry.from_dict(properties["resampled_geometry"])
    cropped = Geometry.from_dict(properties["cropped_geometry"])
    original = Geometry.from_dict(properties["original_geometry"])
    box = tuple(slice(a, b) for a, b in properties["crop_box"])
    out = np.zeros((prob.shape[0], *original.shape_numpy), dtype=np.float16)
    out[0] = 1.0
    for k in range(prob.shape[0]):
        out[k][box] = resample_array(prob[k].float().numpy(), resampled, cropped, "linear").astype(np.float16)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, probabilities=out)


def resolve_mirror(setting: bool | str, validations: Sequence[Mapping[str, float] | None]) -> bool:
    """Whether to mirror: ``setting`` itself, or for ``auto`` whether mirroring raised the
    validation Dice (``dice_mirrored - dice`` averaged over the folds that measured it;
    no measurement - no mirroring)."""
    if setting != "auto":
        return bool(setting)
    gains = [v["dice_mirrored"] - v["dice"] for v in validations if v]
    return bool(gains) and float(np.mean(gains)) > 0.0


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, num_classes: int) -> list[float]:
    """Dice of each foreground class (1..K-1); NaN where both masks are empty."""
    confusion = np.bincount(reference.ravel().astype(np.int64) * num_classes + prediction.ravel().astype(np.int64), minlength=num_classes**2).reshape(num_classes, num_classes)
    out = []
    for k in range(1, num_classes):
        tp = confusion[k, k]
        denom = confusion[k, :].sum() + confusion[:, k].sum()
        out.append(float(2 * tp / denom) if denom else float("nan"))
    return out
