"""Evaluation of a denoising experiment on the held-out test cases, and its report.

Each preprocessed test image ``(C, *spatial)`` is corrupted with a fixed per-case seed (the
same corruption for every experiment), denoised by the fold ensemble with Gaussian-blended
sliding windows, and scored against the clean image on the preprocessed grid. Per-case
table: ``case, psnr_corrupted, ssim_corrupted, psnr, ssim`` (dB; SSIM in [-1, 1]);
summary: one row per metric with ``mean, std, median, min, max``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from monai.inferers import sliding_window_inference

from pipeline.denoise.corrupt import corrupt
from pipeline.denoise.metrics import data_range, psnr, ssim
from pipeline.denoise.train import case_seed
from pipeline.landmarks.html import Figure, Section, render_page, table_of
from pipeline.landmarks.models import first_output
from pipeline.reporting.figures import plt, to_data_uri
from pipeline.training.device import autocast

METRICS = ("psnr_corrupted", "ssim_corrupted", "psnr", "ssim")


@torch.no_grad()
def denoise_image(models: Sequence[torch.nn.Module], image: np.ndarray, patch: Sequence[int], overlap: float = 0.5, batch_size: int = 2, device: torch.device | None = None, amp: torch.dtype | None = None) -> np.ndarray:
    """Denoised ``(C, *spatial)`` float32: mean over ``models`` of Gaussian-blended windows."""
    device = device or torch.device("cpu")
    x = torch.from_numpy(np.array(image, dtype=np.float32))[None].to(device)

    def predictor(window: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            return torch.stack([first_output(m(window)).float() for m in models]).mean(0)

    return sliding_window_inference(x, list(patch), batch_size, predictor, overlap=overlap, mode="gaussian", sw_device=device, device=torch.device("cpu"))[0].float().numpy()


def evaluate_case(models: Sequence[torch.nn.Module], folder: str | os.PathLike[str], corruption: Mapping[str, Any], patch: Sequence[int], overlap: float, device: torch.device | None = None) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Scores of one preprocessed case; also returns the corrupted and the denoised image."""
    folder = Path(folder)
    case = json.loads((folder / "properties.json").read_text(encoding="utf-8"))["case"]
    clean = np.load(folder / "image.npy").astype(np.float32)
    noisy = corrupt(clean, corruption, np.random.default_rng(case_seed(case, corruption["eval_seed"])))
    out = denoise_image(models, noisy, patch, overlap, device=device)
    span = data_range(clean)
    row = {"case": case, "psnr_corrupted": psnr(noisy, clean, span), "ssim_corrupted": ssim(noisy, clean, span), "psnr": psnr(out, clean, span), "ssim": ssim(out, clean, span)}
    return row, noisy, out


def summarize(per_case: pd.DataFrame) -> pd.DataFrame:
    """One row per metric: ``mean, std, median, min, max`` over the cases."""
    rows = [{"metric": m, "mean": per_case[m].mean(), "std": per_case[m].std(), "median": per_case[m].median(), "min": per_case[m].min(), "max": per_case[m].max()} for m in METRICS]
    return pd.DataFrame(rows)


def example_figure(case: str, clean: np.ndarray, noisy: np.ndarray, out: np.ndarray) -> str:
    """The middle slice of the first channel: corrupted, denoised, clean."""
    middle = tuple([0] + [s // 2 for s in clean.shape[1:2]]) if clean.ndim == 4 else (0,)
    low, high = np.percentile(clean, [1, 99.5])
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, (title, image) in zip(axes, (("corrupted", noisy), ("denoised", out), ("clean", clean))):
        ax.imshow(image[middle], cmap="gray", vmin=low, vmax=high, origin="lower")
        ax.set_title(f"{case}: {title}", fontsize=9)
        ax.axis("off")
    return to_data_uri(fig)


def write_denoise_report(experiment: str, config: Mapping[str, Any], per_case: pd.DataFrame, summary: pd.DataFrame, logs: Mapping[str, pd.DataFrame], figure: str | None, output: str | os.PathLike[str]) -> None:
    """Render ``reports/<experiment>.html`` of a denoising experiment."""
    settings = config["experiments"][experiment]
    sections = [
        Section("Image quality on the test cases", "PSNR (dB) and SSIM of the corrupted input and of the denoised output against the clean image (preprocessed grid and intensities).", table_of(summary, 3)),
        Section("Per case", table=table_of(per_case, 3)),
    ]
    if figure:
        sections.append(Section("Example", figures=[Figure(figure, "Middle slice of the first test case.")]))
    if logs:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for fold, frame in sorted(logs.items()):
            ax.plot(frame["epoch"], frame["train_loss"], marker=".", label=fold)
        ax.set(xlabel="epoch", ylabel="training loss", yscale="log")
        ax.legend(fontsize=7)
        sections.append(Section("Training", figures=[Figure(to_data_uri(fig), "Training loss per epoch.")]))
    sections.append(Section("Settings", pre=yaml.safe_dump(json.loads(json.dumps(settings)), sort_keys=False)))
    render_page(f"Experiment {experiment} - denoising autoencoder", f"Dataset: {config['dataset']['name']}", sections, output)
