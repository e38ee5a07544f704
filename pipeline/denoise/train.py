"""Training of a denoising autoencoder (``task: denoise``) on one fold.

Input: a patch of a preprocessed image, augmented as the experiment says, then corrupted
(:func:`pipeline.denoise.corrupt.corrupt`); target: the clean patch; loss: L1 or MSE. The
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
import pandas as pd
import torch

from pipeline.denoise.corrupt import corrupt
from pipeline.denoise.metrics import data_range, psnr, ssim
from pipeline.landmarks.loop import run_training
from pipeline.landmarks.models import first_output
from pipeline.training.augment import build_augmentation
from pipeline.training.device import select_device
from pipeline.training.loop import make_model
from pipeline.training.sampling import PreprocessedCase, crop_with_padding

log = logging.getLogger(__name__)


def denoise_architecture(experiment: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Architecture of a denoising network: output channels = image channels."""
    channels = len(plan["channels"])
    return {"task": "denoise", "model": dict(experiment["model"]), "spatial_dims": int(plan["dimensions"]), "in_channels": channels, "num_classes": channels}


def case_seed(case: str, seed: int) -> list[int]:
    """A fixed RNG seed per case (the same corruption in every experiment and run)."""
    return [seed, zlib.crc32(case.encode())]


class DenoiseBatches(torch.utils.data.Dataset):
    """Item ``i``: ``{"image": corrupted B C *patch, "target": clean B C *patch}``, a pure function of ``(seed, i)``."""

    def __init__(self, folders: Sequence[str | os.PathLike[str]], patch: Sequence[int], batch_size: int, corruption: Mapping[str, Any], seed: int, augment: Callable[[dict, int], dict] | None) -> None:
        if not folders:
            raise ValueError("no training images: the fold's case lists are empty")
        self.cases = [PreprocessedCase(f) for f in folders]
        self.patch, self.batch_size, self.corruption, self.seed, self.augment = list(patch), batch_size, dict(corruption), seed, augment

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(iteration)])
        clean, noisy = [], []
        for _ in range(self.batch_size):
            case = self.cases[int(rng.integers(len(self.cases)))]
            shape = case.image.shape[1:]
            start = [int(rng.integers(0, max(n - p, 0) + 1)) if n >= p else -int(rng.integers(0, p - n + 1)) for n, p in zip(shape, self.patch)]
            image = crop_with_padding(case.image, start, self.patch).astype(np.float32)
            if self.augment is not None:
                dummy = torch.zeros((1, *self.patch), dtype=torch.uint8)
                image = np.asarray(self.augment({"image": torch.from_numpy(image), "label": dummy}, int(rng.integers(2**31)))["image"], dtype=np.float32)
            clean.append(torch.from_numpy(image))
            noisy.append(torch.from_numpy(corrupt(image, self.corruption, rng)))
        return {"image": torch.stack(noisy), "target": torch.stack(clean)}


def centre_crop(image: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    """The ``patch``-sized crop at the centre of ``image`` ``(C, *spatial)`` (zero-padded if smaller)."""
    start = [(n - p) // 2 for n, p in zip(image.shape[1:], patch)]
    return crop_with_padding(image, start, patch).astype(np.float32)


def train_denoise_fold(
    name: str, experiment: Mapping[str, Any], plan: Mapping[str, Any], split: Mapping[str, Sequence[str]], preprocessed: str | os.PathLike[str],
    fold_dir: str | os.PathLike[str], device: torch.device | None = None,
) -> pd.DataFrame:
    """Train one fold of a denoising experiment (resumable); return its log (``val_psnr``, ``val_ssim``)."""
    settings, corruption = experiment["training"], experiment["denoise"]
    arch = denoise_architecture(experiment, plan)
    device = device or select_device()
    torch.manual_seed(settings["seed"])
    net = make_model(arch).to(device)
    if experiment.get("init_from"):
        from pipeline.denoise.pretrain import load_pretrained

        load_pretrained(net, experiment, fold_dir)
    cases = list(dict.fromkeys([*split["train"], *split["val"]]))
    augment = build_augmentation(settings["augmentation"], arch["spatial_dims"])
    batches = DenoiseBatches([Path(preprocessed) / c for c in cases], plan["patch_size"], plan["batch_size"], corruption, settings["seed"], augment)
    val = []
    for case in split["val"]:
        clean = centre_crop(np.asarray(PreprocessedCase(Path(preprocessed) / case).image), plan["patch_size"])
        val.append((clean, corrupt(clean, corruption, np.random.default_rng(case_seed(case, corruption["eval_seed"])))))

    def validate(model: torch.nn.Module) -> dict[str, float]:
        if not val:
            return {"psnr": float("nan"), "ssim": float("nan"), "score": -float("inf")}
        scores = []
        with torch.no_grad():
            for clean, noisy in val:
                out = first_output(model(torch.from_numpy(noisy)[None].to(device))).float()[0].cpu().numpy()
                scores.append((psnr(out, clean, data_range(clean)), ssim(out, clean, data_range(clean))))
        mean = np.mean(scores, axis=0)
        return {"psnr": float(mean[0]), "ssim": float(mean[1]), "score": float(mean[0])}

    criterion = torch.nn.L1Loss() if corruption["loss"] == "l1" else torch.nn.MSELoss()

    def loss(model: torch.nn.Module, batch: dict, dev: torch.device) -> torch.Tensor:
        return criterion(first_output(model(batch["image"].to(dev))).float(), batch["target"].to(dev))

    log.info("%s: denoising on %d training images (%s loss)", name, len(cases), corruption["loss"])
    return run_training(name, fold_dir, net, arch, settings, batches, loss, validate, {"plan": dict(plan), "experiment": dict(experiment)}, device)
