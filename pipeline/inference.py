"""Inference: sliding-window prediction with Gaussian blending, mirroring and fold ensembles.

Arrays on the preprocessed grid are ``(C, *spatial)`` float32 (numpy order); outputs are
class probabilities ``(K, *spatial)``. :func:`predict_case` takes a preprocessed case to a
label map on the original grid, written with the original header.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from pipeline.atomic import atomic_path
from pipeline.io.images import Geometry, image_case_id, write_image
from pipeline.preprocessing.resample import resample_array
from pipeline.preprocessing.inverse import restore_probabilities
from pipeline.training.device import autocast

log = logging.getLogger(__name__)


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

    Args:
        models: networks in eval mode mapping ``B C *patch`` to logits ``B K *patch``.
        image: ``(C, *spatial)`` preprocessed intensities.
        patch: window size, numpy order; smaller images are padded by MONAI.
        mirror: also average the predictions of the input flipped along every
            combination of ``mirror_axes`` (spatial axes in numpy order, default all;
            2^len(axes) passes per model).
        amp: autocast dtype (bf16/fp16) or None for fp32.
        out_dtype: dtype of the stitched probabilities on the CPU; float16 halves the
            memory of large volumes (each window's probabilities are summed once per
            overlap, so the rounding stays near 1e-3).
    Returns:
        CPU tensor ``(K, *spatial)`` of class probabilities in ``out_dtype``.
    """
    device = device or torch.device("cpu")
    x = torch.from_numpy(np.array(image, dtype=np.float32))[None].to(device)
    dims = x.ndim - 2
    flips: list[tuple[int, ...]] = [()]
    if mirror:
        axes = [a + 2 for a in (range(dims) if mirror_axes is None else mirror_axes)]
        flips += [c for r in range(1, len(axes) + 1) for c in itertools.combinations(axes, r)]
    total: torch.Tensor | None = None
    for model in models:
        def predictor(window: torch.Tensor, model: torch.nn.Module = model) -> torch.Tensor:
            with autocast(device, amp):
                return torch.softmax(model(window).float(), dim=1).to(out_dtype)

        for axes in flips:
            xin = torch.flip(x, axes) if axes else x
            prob = sliding_window_inference(xin, list(patch), batch_size, predictor, overlap=overlap, mode="gaussian", sw_device=device, device=torch.device("cpu"))
            prob = torch.flip(prob, axes) if axes else prob
            total = prob if total is None else total + prob
    assert total is not None, "sliding_window_probabilities needs at least one model"
    return (total / (len(models) * len(flips)))[0]


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

    folder = Path(folder)
    properties = load_properties(folder)
    image = np.load(folder / "image.npy", mmap_mode="r")
    out_dtype = stitch_dtype(image.shape[1:], num_classes)
    prob = sliding_window_probabilities(
        models, image, patch, settings["overlap"], settings["mirror"], batch_size, device, amp, settings.get("mirror_axes"), out_dtype
    )
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


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, num_classes: int) -> list[float]:
    """Dice of each foreground class (1..K-1); NaN where both masks are empty."""
    confusion = np.bincount(reference.ravel().astype(np.int64) * num_classes + prediction.ravel().astype(np.int64), minlength=num_classes**2).reshape(num_classes, num_classes)
    out = []
    for k in range(1, num_classes):
        tp = confusion[k, k]
        denom = confusion[k, :].sum() + confusion[:, k].sum()
        out.append(float(2 * tp / denom) if denom else float("nan"))
    return out
