"""Training patches with landmark targets: Gaussian heatmaps or coordinate offsets.

Like :class:`pipeline.training.sampling.BatchDataset`, item ``i`` is the whole batch of
iteration ``i`` and a pure function of ``(seed, i)``, so a resumed run sees the same data.
Only intensity augmentation applies (a flip or rotation would move the targets).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import SettingError
from pipeline.io.images import Geometry
from pipeline.preprocessing.case_folder import PreprocessedCase, crop_with_padding, random_start
from pipeline.tasks.landmarks.geometry import index_metric, world_to_index
from pipeline.tasks.landmarks.heatmaps import gaussian_heatmaps


class LandmarkCase(PreprocessedCase):
    """A preprocessed case with its landmarks as continuous indices ``(L, dim)`` (numpy order) of its grid."""

    def __init__(self, folder: str | os.PathLike[str], world_points: np.ndarray) -> None:
        super().__init__(folder)
        self.geometry = Geometry.from_dict(self.properties["resampled_geometry"])
        self.points = world_to_index(world_points, self.geometry)
        self.metric = index_metric(self.geometry)


def patch_start(case: LandmarkCase, patch: Sequence[int], rng: np.random.Generator, on_landmark: bool, jitter: float = 0.8) -> list[int]:
    """First voxel of a patch: around a random landmark (anywhere within ``jitter`` half
    patch sizes of the centre) or uniformly in the image (zero-padded where it is smaller)."""
    shape = case.image.shape[1:]
    if on_landmark:
        point = case.points[int(rng.integers(len(case.points)))]
        shift = rng.uniform(-jitter, jitter, size=len(patch)) * np.asarray(patch) / 2
        return [int(round(c - s)) - p // 2 for c, s, p in zip(point, shift, patch)]
    return random_start(shape, patch, rng)


def offsets_from_centre(points: np.ndarray, start: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """Landmark offsets from the patch centre in half patch sizes ``(L, dim)`` (the regression target)."""
    centre = np.asarray(start, dtype=np.float64) + (np.asarray(patch) - 1) / 2.0
    return (points - centre) / (np.asarray(patch, dtype=np.float64) / 2.0)


class LandmarkBatches(torch.utils.data.Dataset):
    """Map-style dataset: item ``i`` = ``{"image": B C *patch, "target": ...}`` of iteration ``i``.

    ``target`` is ``B L *patch`` heatmaps (``method="heatmap"``) or ``B L dim`` offsets
    (``method="regression"``, see :func:`offsets_from_centre`).
    """

    def __init__(
        self,
        cases: Sequence[LandmarkCase],
        patch: Sequence[int],
        batch_size: int,
        method: str,
        sigma_mm: float,
        landmark_fraction: float,
        seed: int,
        augment: Callable[[dict, int], dict] | None = None,
    ) -> None:
        if not cases:
            raise SettingError("no training cases: the fold's training list is empty")
        self.cases, self.patch, self.batch_size = list(cases), list(patch), batch_size
        self.method, self.sigma_mm, self.seed, self.augment = method, sigma_mm, seed, augment
        self.on_landmark = int(round(batch_size * landmark_fraction))

    def __len__(self) -> int:  # effectively unbounded; the sampler picks the iterations
        return 2**62

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(iteration)])
        images, targets = [], []
        for b in range(self.batch_size):
            case = self.cases[int(rng.integers(len(self.cases)))]
            start = patch_start(case, self.patch, rng, on_landmark=b < self.on_landmark)
            image = torch.from_numpy(crop_with_padding(case.image, start, self.patch).astype(np.float32))
            if self.augment is not None:
                dummy = torch.zeros((1, *self.patch), dtype=torch.uint8)
                image = torch.as_tensor(self.augment({"image": image, "label": dummy}, int(rng.integers(2**31)))["image"], dtype=torch.float32)
            images.append(image)
            if self.method == "heatmap":
                targets.append(torch.from_numpy(gaussian_heatmaps(case.points, self.patch, case.metric, self.sigma_mm, start)))
            else:
                targets.append(torch.from_numpy(offsets_from_centre(case.points, start, self.patch).astype(np.float32)))
        return {"image": torch.stack(images), "target": torch.stack(targets)}


def open_cases(preprocessed: str | os.PathLike[str], cases: Sequence[str], points: dict[str, np.ndarray]) -> list[LandmarkCase]:
    """:class:`LandmarkCase` objects of ``cases`` under the preprocessed root."""
    return [LandmarkCase(Path(preprocessed) / c, points[c]) for c in cases]
