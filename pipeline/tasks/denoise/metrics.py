"""Image-quality metrics of the denoising task: PSNR and SSIM.

Inputs are arrays ``(C, *spatial)`` of the same shape (2D or 3D); ``data_range``
is the dynamic range of the reference (max - min), in its intensity units.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import SSIMMetric


def psnr(prediction: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``; ``inf`` for identical inputs."""
    mse = float(np.mean((np.asarray(prediction, dtype=np.float64) - np.asarray(reference, dtype=np.float64)) ** 2))
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(prediction: np.ndarray, reference: np.ndarray, data_range: float, win_size: int = 7) -> float:
    """Mean structural similarity (MONAI ``SSIMMetric``, Gaussian window of ``win_size`` voxels); 1 for identical inputs."""
    pred, ref = np.asarray(prediction, dtype=np.float32), np.asarray(reference, dtype=np.float32)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference should have the same shape, got {pred.shape} and {ref.shape}")
    if pred.ndim not in (3, 4):
        raise ValueError(f"ssim expects (C, *spatial) arrays of a 2D or 3D image, got shape {pred.shape}")
    metric = SSIMMetric(spatial_dims=pred.ndim - 1, data_range=float(data_range), win_size=win_size)
    return float(metric(torch.from_numpy(pred)[None], torch.from_numpy(ref)[None]).mean())


def data_range(reference: np.ndarray) -> float:
    """``max - min`` of the reference (1 when it is constant)."""
    span = float(np.max(reference) - np.min(reference))
    return span if span > 0 else 1.0
