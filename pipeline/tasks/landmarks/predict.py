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

import dataclasses
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
from pipeline.tasks.landmarks.decoding import Decoded, decode_heatmaps, score_points, with_fold_agreement
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


@dataclasses.dataclass(frozen=True)
class Locator:
    """The trained models of a landmark experiment and how landmarks are read off them.

    Attributes:
        models: the fold ensemble (eval mode), ``B C *patch -> B L *patch`` heatmaps or
            ``B L dim`` offsets.
        arch: the checkpoint's architecture (``method``, ``patch_size``, ``num_classes``, ``landmarks``).
        settings: the experiment's ``landmarks`` section.
        configuration: the one learned from the training landmarks (``None``: each
            channel's maximum, confidence without the agreement term).
        overlap: sliding-window overlap (heatmap).
    """

    models: Sequence[torch.nn.Module]
    arch: Mapping[str, Any]
    settings: Mapping[str, Any]
    configuration: Configuration | None
    overlap: float
    batch_size: int = 2
    device: torch.device | None = None
    amp: torch.dtype | None = None

    def locate(self, image: np.ndarray, geometry: Geometry) -> Decoded:
        """The decoded landmarks of ``image`` ``(C, *spatial)`` on the grid ``geometry``.

        With two or more models every fold is also decoded on its own and its distance from
        the ensemble's landmark enters the confidence
        (:func:`~pipeline.tasks.landmarks.decoding.with_fold_agreement`)."""
        settings, configuration, patch = self.settings, self.configuration, self.arch["patch_size"]
        if self.arch["method"] == "regression":

            def regress(models: Sequence[torch.nn.Module]) -> np.ndarray:
                return regress_points(models, image, patch, self.arch["num_classes"], settings["regression_steps"], self.device, self.amp)

            decoded = score_points(regress(self.models), geometry, configuration, settings["min_confidence"])
            folds = [score_points(regress([m]), geometry, configuration, 0.0) for m in self.models] if len(self.models) > 1 else []
        else:
            # Stitching is linear: the mean of the folds' heatmaps is the ensemble's heatmap.
            per_fold = [
                sliding_window([m], image, patch, self.overlap, batch_size=self.batch_size, device=self.device, amp=self.amp, activation="none").numpy()
                for m in self.models
            ]
            decoded = decode_heatmaps(np.mean(per_fold, axis=0), geometry, settings, configuration)
            folds = [decode_heatmaps(h, geometry, settings, configuration) for h in per_fold] if len(self.models) > 1 else []
        return with_fold_agreement(decoded, [f.world for f in folds], settings["sigma_mm"], settings["min_confidence"])

    def predict_case(self, folder: str | os.PathLike[str]) -> pd.DataFrame:
        """Predicted landmarks of a preprocessed case: ``case, landmark, x, y[, z]`` (mm, ITK/LPS),
        the continuous index on the preprocessed grid (``index_0..``, numpy order), ``peak``,
        ``sharpness``, ``expected_distance_mm``, ``fold_spread_mm``, ``confidence`` and
        ``flagged`` (:class:`~pipeline.tasks.landmarks.decoding.Decoded`)."""
        case = PreprocessedCase(folder)
        decoded = self.locate(case.image, Geometry.from_dict(case.properties["resampled_geometry"]))
        extra: dict[str, Any] = {f"index_{k}": decoded.points[:, k] for k in range(decoded.points.shape[1])}
        extra.update(decoded.columns())
        return points_table(case.case, self.arch["landmarks"], decoded.world, extra)
