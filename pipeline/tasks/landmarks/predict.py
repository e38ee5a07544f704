"""Landmark inference on a preprocessed case, back to world millimetres.

``heatmap``: sliding-window heatmaps (the shared stitcher without an activation: Gaussian-
blended windows, mean over the fold ensemble), decoded jointly against the landmark
configuration learned at training time (:mod:`pipeline.tasks.landmarks.decoding`: candidate
peaks per channel, the combination that fits the configuration), refined below the voxel.
``regression``: start at the image centre, then re-centre a patch on each landmark's
estimate and regress again (``regression_steps`` times), mean over the fold ensemble.
Every landmark gets a confidence and a flag (see :mod:`pipeline.tasks.landmarks.decoding`).
Points on the preprocessed grid go to the world through its geometry (exact inverse of
the world -> index map used to build the training targets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.inference.sliding_window import sliding_window
from pipeline.io.images import Geometry
from pipeline.preprocessing.case_folder import PreprocessedCase, crop_with_padding
from pipeline.runtime import autocast
from pipeline.tasks.landmarks.configuration import Configuration
from pipeline.tasks.landmarks.decoding import Decoded, decode_heatmaps, score_points
from pipeline.tasks.landmarks.table import points_table


@torch.no_grad()
def regress_points(
    models: Sequence[torch.nn.Module],
    image: np.ndarray,
    patch: Sequence[int],
    num_landmarks: int,
    steps: int = 3,
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
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
    models: Sequence[torch.nn.Module],
    arch: Mapping[str, Any],
    image: np.ndarray,
    geometry: Geometry,
    settings: Mapping[str, Any],
    configuration: Configuration | None,
    overlap: float,
    batch_size: int = 2,
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
) -> Decoded:
    """The decoded landmarks of ``image`` ``(C, *spatial)`` on the grid ``geometry``.

    ``settings``: the experiment's ``landmarks`` section; ``configuration``: the one learned
    from the training landmarks (``None``: each channel's maximum, confidence without the
    agreement term)."""
    patch = arch["patch_size"]
    if arch["method"] == "regression":
        points = regress_points(models, image, patch, arch["num_classes"], settings["regression_steps"], device, amp)
        return score_points(points, geometry, configuration, settings["min_confidence"])
    heatmaps = sliding_window(models, image, patch, overlap, batch_size=batch_size, device=device, amp=amp, activation="none").numpy()
    return decode_heatmaps(heatmaps, geometry, settings, configuration)


def predict_case_landmarks(
    models: Sequence[torch.nn.Module],
    arch: Mapping[str, Any],
    folder: str | os.PathLike[str],
    settings: Mapping[str, Any],
    configuration: Configuration | None,
    overlap: float,
    batch_size: int = 2,
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
) -> pd.DataFrame:
    """Predicted landmarks of a preprocessed case: ``case, landmark, x, y[, z]`` (mm, ITK/LPS),
    the continuous index on the preprocessed grid (``index_0..``, numpy order), ``peak``,
    ``sharpness``, ``expected_distance_mm``, ``confidence`` and ``flagged``
    (:class:`~pipeline.tasks.landmarks.decoding.Decoded`)."""
    case = PreprocessedCase(folder)
    geometry = Geometry.from_dict(case.properties["resampled_geometry"])
    decoded = locate_landmarks(models, arch, case.image, geometry, settings, configuration, overlap, batch_size, device, amp)
    extra: dict[str, Any] = {f"index_{k}": decoded.points[:, k] for k in range(decoded.points.shape[1])}
    extra.update(decoded.columns())
    return points_table(case.case, arch["landmarks"], decoded.world, extra)
