"""Evaluation of a denoising experiment on the held-out test cases, and its report.

Each preprocessed test image ``(C, *spatial)`` is corrupted with a fixed per-case seed (the
same corruption for every experiment), denoised by the fold ensemble with Gaussian-blended
sliding windows (the prediction, ``<case>.npz``), and scored against the clean image on the
preprocessed grid. Per-case table: ``case, psnr_corrupted, ssim_corrupted, psnr, ssim`` (dB; SSIM in [-1, 1]);
summary: one row per metric with ``mean, std, median, min, max``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.atomic import atomic_path
from pipeline.inference.sliding_window import sliding_window
from pipeline.preprocessing.case_folder import PreprocessedCase
from pipeline.reporting.figures import plt, to_data_uri
from pipeline.reporting.page import Figure, Section, render_experiment_page, table_of
from pipeline.reporting.results import ExperimentResults
from pipeline.tasks.denoise.corrupt import corrupt
from pipeline.tasks.denoise.metrics import data_range, psnr, ssim
from pipeline.tasks.denoise.train import case_seed

METRICS = ("psnr_corrupted", "ssim_corrupted", "psnr", "ssim")


def predict_case(
    models: Sequence[torch.nn.Module],
    folder: str | os.PathLike[str],
    corruption: Mapping[str, Any],
    patch: Sequence[int],
    overlap: float,
    output: str | os.PathLike[str],
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt a preprocessed case with its fixed seed, denoise it with the fold ensemble and
    write ``output`` (``.npz``: ``corrupted`` and ``denoised``, ``(C, *spatial)`` float32 on
    the preprocessed grid); return both arrays."""
    case = PreprocessedCase(folder)
    clean = np.asarray(case.image, dtype=np.float32)
    noisy = corrupt(clean, corruption, np.random.default_rng(case_seed(case.case, corruption["eval_seed"])))
    out = sliding_window(models, noisy, patch, overlap, device=device, amp=amp, activation="none").numpy()
    with atomic_path(output, suffix=".npz") as tmp:
        np.savez_compressed(tmp, corrupted=noisy, denoised=out)
    return noisy, out


def read_prediction(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(corrupted, denoised)`` of a prediction written by :func:`predict_case`."""
    with np.load(path) as data:
        return data["corrupted"], data["denoised"]


def score_case(case: str, clean: np.ndarray, noisy: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    """PSNR (dB) and SSIM of the corrupted and the denoised image against the clean one."""
    span = data_range(clean)
    return {
        "case": case,
        "psnr_corrupted": psnr(noisy, clean, span),
        "ssim_corrupted": ssim(noisy, clean, span),
        "psnr": psnr(out, clean, span),
        "ssim": ssim(out, clean, span),
    }


def summarize(per_case: pd.DataFrame) -> pd.DataFrame:
    """One row per metric: ``mean, std, median, min, max`` over the cases."""
    rows = [
        {"metric": m, "mean": per_case[m].mean(), "std": per_case[m].std(), "median": per_case[m].median(), "min": per_case[m].min(), "max": per_case[m].max()}
        for m in METRICS
    ]
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


def write_denoise_report(results: ExperimentResults, figure: str | None, output: str | os.PathLike[str]) -> None:
    """Render ``reports/<experiment>.html`` of a denoising experiment (atomically)."""
    sections = [
        Section(
            "Image quality on the test cases",
            "PSNR (dB) and SSIM of the corrupted input and of the denoised output against the clean image (preprocessed grid and intensities).",
            table_of(results.summary, 3),
        ),
        Section("Per case", table=table_of(results.per_case, 3)),
    ]
    if figure:
        sections.append(Section("Example", figures=[Figure(figure, "Middle slice of the first test case.")]))
    if results.logs:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for fold, frame in sorted(results.logs.items()):
            ax.plot(frame["epoch"], frame["train_loss"], marker=".", label=fold)
        ax.set(xlabel="epoch", ylabel="training loss", yscale="log")
        ax.legend(fontsize=7)
        sections.append(Section("Training", figures=[Figure(to_data_uri(fig), "Training loss per epoch.")]))
    render_experiment_page(results, "denoising autoencoder", sections, output)
