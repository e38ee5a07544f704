"""Patch sampling from memory-mapped preprocessed cases, with foreground oversampling.

Each batch is a pure function of ``(seed, iteration)``: the same iteration always gives the
same patches and augmentations, so a resumed training sees exactly the data it would have
seen without the interruption, with any number of loader workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import SettingError
from pipeline.preprocessing.case_folder import PreprocessedCase, crop_with_padding, random_start


def sample_patch(case: PreprocessedCase, patch: Sequence[int], rng: np.random.Generator, foreground: bool) -> tuple[np.ndarray, np.ndarray]:
    """One patch: image ``(C, *patch)`` float32 and label ``(*patch)`` uint8.

    Foreground patches are centred on a stored location of a random class present in the
    case; others start uniformly at random (so that the patch stays inside when it fits).
    """
    shape = case.image.shape[1:]
    if foreground and case.locations:
        cls = list(case.locations)[rng.integers(len(case.locations))]
        centre = case.locations[cls][rng.integers(len(case.locations[cls]))]
        start = [int(c) - p // 2 for c, p in zip(centre, patch)]
    else:
        start = random_start(shape, patch, rng)
    return crop_with_padding(case.image, start, patch).astype(np.float32), crop_with_padding(case.label, start, patch)


class BatchDataset(torch.utils.data.Dataset):
    """Map-style dataset whose item ``i`` is the whole batch of training iteration ``i``.

    Used with ``DataLoader(batch_size=None, sampler=range(first, last))``, so worker
    processes load and augment batches ahead of the GPU while the order stays fixed.
    """

    def __init__(
        self,
        folders: Sequence[str | os.PathLike[str]],
        patch: Sequence[int],
        batch_size: int,
        foreground_fraction: float,
        seed: int,
        augment: Callable[[dict, int], dict] | None = None,
        stream: int = 0,
    ) -> None:
        if not folders:
            raise SettingError("no training cases: the fold's training list is empty")
        self.cases = [PreprocessedCase(f) for f in folders]
        self.patch = list(patch)
        self.batch_size = batch_size
        self.foreground = int(round(batch_size * foreground_fraction))
        self.seed = seed
        self.augment = augment
        self.stream = stream  # data-parallel rank: each rank draws its own batches

    def __len__(self) -> int:  # effectively unbounded; the sampler picks the iterations
        return 2**62

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.stream, int(iteration)])
        images, labels = [], []
        for b in range(self.batch_size):
            case = self.cases[int(rng.integers(len(self.cases)))]
            image, label = sample_patch(case, self.patch, rng, foreground=b < self.foreground)
            sample = {"image": torch.from_numpy(image), "label": torch.from_numpy(label[None].astype(np.int64))}
            if self.augment is not None:
                sample = self.augment(sample, int(rng.integers(2**31)))
            images.append(torch.as_tensor(sample["image"], dtype=torch.float32))
            labels.append(torch.as_tensor(sample["label"]).long())
        return {"image": torch.stack(images), "label": torch.stack(labels)}


def fold_folders(preprocessed: str | os.PathLike[str], cases: Sequence[str]) -> list[Path]:
    """Folders of ``cases`` under the preprocessed root."""
    return [Path(preprocessed) / c for c in cases]


def class_presence(properties: Mapping[str, Any]) -> list[int]:
    """Foreground classes present in a preprocessed case."""
    return [int(k) for k, v in properties.get("class_locations", {}).items() if v]
