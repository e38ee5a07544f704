"""Training of a denoising autoencoder (``task: denoise``) on one fold.

Input: a patch of a preprocessed image, augmented as the experiment says, then corrupted
(:func:`pipeline.tasks.denoise.corrupt.corrupt`); target: the clean patch; loss: L1 or MSE. The
network is any registry architecture with as many outputs as image channels. No label is
used, so every training image of the dataset (the fold's training *and* validation cases)
is used; the validation PSNR/SSIM (central patch of each validation case, fixed
corruption) therefore measures fit, not generalisation. Test cases are never used.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import SettingError
from pipeline.models import build_network
from pipeline.models.heads import first_output
from pipeline.models.registry import resolve_auto
from pipeline.preprocessing.case_folder import PreprocessedCase, centre_crop, crop_with_padding, random_start
from pipeline.tasks.denoise.corrupt import corrupt
from pipeline.tasks.denoise.metrics import data_range, psnr, ssim
from pipeline.training.augment import build_augmentation
from pipeline.training.task import FoldTraining

log = logging.getLogger(__name__)


def denoise_architecture(experiment: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Architecture of a denoising network: output channels = image channels."""
    channels = len(plan["channels"])
    return {
        "task": "denoise",
        "model": resolve_auto(experiment["model"], plan),
        "spatial_dims": int(plan["dimensions"]),
        "in_channels": channels,
        "num_classes": channels,
    }


def case_seed(case: str, seed: int) -> list[int]:
    """A fixed RNG seed per case (the same corruption in every experiment and run)."""
    return [seed, zlib.crc32(case.encode())]


class DenoiseBatches(torch.utils.data.Dataset):
    """Item ``i``: ``{"image": corrupted B C *patch, "target": clean B C *patch}``, a pure function of ``(seed, i)``."""

    def __init__(
        self,
        folders: Sequence[str | os.PathLike[str]],
        patch: Sequence[int],
        batch_size: int,
        corruption: Mapping[str, Any],
        seed: int,
        augment: Callable[[dict, int], dict] | None,
    ) -> None:
        if not folders:
            raise SettingError("no training images: the fold's case lists are empty")
        self.cases = [PreprocessedCase(f) for f in folders]
        self.patch, self.batch_size, self.corruption, self.seed, self.augment = list(patch), batch_size, dict(corruption), seed, augment

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(iteration)])
        clean, noisy = [], []
        for _ in range(self.batch_size):
            case = self.cases[int(rng.integers(len(self.cases)))]
            start = random_start(case.image.shape[1:], self.patch, rng)
            image = crop_with_padding(case.image, start, self.patch).astype(np.float32)
            if self.augment is not None:
                dummy = torch.zeros((1, *self.patch), dtype=torch.uint8)
                image = np.asarray(self.augment({"image": torch.from_numpy(image), "label": dummy}, int(rng.integers(2**31)))["image"], dtype=np.float32)
            clean.append(torch.from_numpy(image))
            noisy.append(torch.from_numpy(corrupt(image, self.corruption, rng)))
        return {"image": torch.stack(noisy), "target": torch.stack(clean)}


class DenoiseTraining(FoldTraining):
    """The denoising task's training of one fold (see :class:`~pipeline.training.task.TaskTraining`)."""

    def setup(self) -> None:
        experiment, plan, split, preprocessed = self.experiment, self.plan, self.split, self.preprocessed
        self.corruption = experiment["denoise"]
        self.architecture = denoise_architecture(experiment, plan)
        self.cases = list(dict.fromkeys([*split["train"], *split["val"]]))
        self.folders = [Path(preprocessed) / c for c in self.cases]
        self.val = []
        for case in split["val"]:
            clean = centre_crop(np.asarray(PreprocessedCase(Path(preprocessed) / case).image), plan["patch_size"])
            self.val.append((clean, corrupt(clean, self.corruption, np.random.default_rng(case_seed(case, self.corruption["eval_seed"])))))
        self.criterion = torch.nn.L1Loss() if self.corruption["loss"] == "l1" else torch.nn.MSELoss()
        log.info("denoising on %d training images (%s loss)", len(self.cases), self.corruption["loss"])

    def build(self) -> torch.nn.Module:
        return build_network(self.architecture)

    def batches(self, rank: int) -> torch.utils.data.Dataset:
        augment = build_augmentation(self.settings["augmentation"], self.architecture["spatial_dims"])
        return DenoiseBatches(self.folders, self.plan["patch_size"], self.plan["batch_size"], self.corruption, self.settings["seed"], augment)

    def loss(self, model: torch.nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        return self.criterion(first_output(model(batch["image"].to(device))).float(), batch["target"].to(device))

    def validate(self, net: torch.nn.Module, device: torch.device) -> tuple[dict[str, float], float]:
        if not self.val:
            return {"val_psnr": float("nan"), "val_ssim": float("nan"), "val_score": -float("inf")}, -float("inf")
        scores = []
        with torch.no_grad():
            for clean, noisy in self.val:
                out = first_output(net(torch.from_numpy(noisy)[None].to(device))).float()[0].cpu().numpy()
                scores.append((psnr(out, clean, data_range(clean)), ssim(out, clean, data_range(clean))))
        mean = np.mean(scores, axis=0)
        return {"val_psnr": float(mean[0]), "val_ssim": float(mean[1]), "val_score": float(mean[0])}, float(mean[0])
