"""Landmark inference on a preprocessed case, back to world millimetres.

``heatmap``: sliding-window heatmaps (Gaussian-blended windows, mean over the fold
ensemble), each landmark at the maximum of its channel refined below the voxel.
``regression``: start at the image centre, then re-centre a patch on each landmark's
estimate and regress again (``regression_steps`` times), mean over the fold ensemble.
Points on the preprocessed grid go to the world through its geometry (exact inverse of
the world -> index map used to build the training targets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.inferers import sliding_window_inference

from pipeline.io.images import Geometry
from pipeline.landmarks.geometry import index_to_world
from pipeline.landmarks.heatmaps import locate_peaks
from pipeline.landmarks.models import first_output
from pipeline.landmarks.table import points_table
from pipeline.training.device import autocast
from pipeline.training.sampling import crop_with_padding


@torch.no_grad()
def predict_heatmaps(
    models: Sequence[torch.nn.Module], image: np.ndarray, patch: Sequence[int], overlap: float = 0.5, batch_size: int = 2,
    device: torch.device | None = None, amp: torch.dtype | None = None,
) -> np.ndarray:
    """Heatmaps ``(L, *spatial)`` float32 of an image ``(C, *spatial)``: mean over ``models`` of Gaussian-blended windows."""
    device = device or torch.device("cpu")
    x = torch.from_numpy(np.array(image, dtype=np.float32))[None].to(device)

    def predictor(window: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            return torch.stack([first_output(m(window)).float() for m in models]).mean(0)

    out = sliding_window_inference(x, list(patch), batch_size, predictor, overlap=overlap, mode="gaussian", sw_device=device, device=torch.device("cpu"))
    return out[0].float().numpy()


@torch.no_grad()
def regress_points(
    models: Sequence[torch.nn.Module], image: np.ndarray, patch: Sequence[int], num_landmarks: int, steps: int = 3,
    device: torch.device | None = None, amp: torch.dtype | None = None,
) -> np.ndarray:
    """Landmarks ``(L, dim)`` (continuous indices, numpy order) by re-centred coordinate regression."""
    device = device or torch.device("cpu")
    patch_arr = np.asarray(patch, dtype=np.float64)
    estimate = np.tile((np.asarray(image.shape[1:], dtype=np.float64) - 1) / 2.0, (num_landmarks, 1))

    def run(centres: np.ndarray) -> np.ndarray:
        starts = [[int(round(c)) - p // 2 for c, p in zip(centre, patch)] for centre in centres]
        batch = torch.from_numpy(np.stack([crop_with_padding(image, s, patch).astype(np.float32) for s in starts])).to(device)
        with autocast(device, amp):
            offsets = torch.stack([m(batch).float() for m in models]).mean(0).cpu().numpy()
        patch_centres = np.asarray(starts, dtype=np.float64) + (patch_arr - 1) / 2.0
        return patch_centres[:, None, :] + offsets * patch_arr / 2.0  # (patches, L, dim)

    estimate = run(estimate[:1])[0]
    for _ in range(steps):
        estimate = run(estimate)[np.arange(num_landmarks), np.arange(num_landmarks)]
    return estimate


def locate_landmarks(
    models: Sequence[torch.nn.Module], arch: Mapping[str, Any], image: np.ndarray, settings: Mapping[str, Any],
    overlap: float, batch_size: int = 2, device: torch.device | None = None, amp: torch.dtype | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(points, peak values)``: ``(L, dim)`` indices on the image's grid and ``(L,)`` heatmap
    maxima (NaN for regression). ``settings``: the experiment's ``landmarks`` section."""
    patch = arch["patch_size"]
    if arch["method"] == "regression":
        points = regress_points(models, image, patch, arch["num_classes"], settings["regression_steps"], device, amp)
        return points, np.full(len(points), np.nan)
    heatmaps = predict_heatmaps(models, image, patch, overlap, batch_size, device, amp)
    return locate_peaks(heatmaps, settings["refinement"], settings["refinement_window"])


def predict_case_landmarks(
    models: Sequence[torch.nn.Module], arch: Mapping[str, Any], folder: str | os.PathLike[str], settings: Mapping[str, Any],
    overlap: float, batch_size: int = 2, device: torch.device | None = None, amp: torch.dtype | None = None,
) -> pd.DataFrame:
    """Predicted landmarks of a preprocessed case: ``case, landmark, x, y[, z]`` (mm, ITK/LPS),
    the continuous index on the preprocessed grid (``index_0..``, numpy order) and ``peak``."""
    from pipeline.preprocessing.preprocess import load_properties

    folder = Path(folder)
    properties = load_properties(folder)
    image = np.load(folder / "image.npy", mmap_mode="r")
    points, values = locate_landmarks(models, arch, image, settings, overlap, batch_size, device, amp)
    world = index_to_world(points, Geometry.from_dict(properties["resampled_geometry"]))
    extra: dict[str, Any] = {f"index_{k}": points[:, k] for k in range(points.shape[1])}
    extra["peak"] = values
    return points_table(properties["case"], arch["landmarks"], world, extra)
