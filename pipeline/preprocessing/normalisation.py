"""Intensity normalisation of one channel, as the plan's ``normalisation`` entry says.

Schemes (``settings["scheme"]``):

- ``ct``: clip to the dataset's foreground 0.5/99.5 percentiles, z-score with the dataset's
  mean/std (Hounsfield units mean the same on every scanner).
- ``zscore_foreground``: find the foreground by a threshold that does not care whether the
  background is exactly zero or noise (:func:`foreground_mask`), z-score with this image's
  statistics inside it, and set every voxel outside it to the plan's fixed ``background``
  value (z units). A skull-stripped scan with exact zeros and the same scan with a noisy
  background therefore give the same values inside the foreground and the same constant
  outside.
- ``zscore_nonzero``: the scheme of plans written before ``zscore_foreground``: z-score inside
  the nonzero voxels, 0 outside. It depends on the background: a noisy background counts as
  foreground. Kept so that older plans and checkpoints predict as they were trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from pipeline.errors import SettingError

#: Histogram bins of the Otsu threshold.
OTSU_BINS = 256
#: Background value (z units) of ``zscore_foreground``: below the tissue of a z-scored scan
#: (the darkest 0.5 % of a T1 brain lie near -3), the same for every scan.
BACKGROUND = -4.0


def otsu_threshold(values: np.ndarray, bins: int = OTSU_BINS) -> float:
    """Otsu's threshold of ``values`` (any shape): the cut that maximises the between-class variance.

    Returns the upper edge of the last bin of the lower class; a constant input returns its value.
    """
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    counts = counts.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1e-12)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1e-12)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def foreground_mask(channel: np.ndarray, method: str, smoothing_voxels: float = 1.0) -> np.ndarray:
    """Boolean foreground of one channel (any layout, same shape as ``channel``).

    ``otsu``: the image smoothed with a Gaussian of ``smoothing_voxels`` (sigma in voxels) is
    thresholded at its Otsu threshold and the enclosed holes (ventricles, dark lesions) are
    filled; exact zeros and low noise both fall below the threshold, so the mask does not
    depend on which of the two a scanner or a skull stripper left. ``nonzero``: the voxels
    that are not exactly 0 (for data whose background is always exactly zero).
    """
    if method == "nonzero":
        return channel != 0
    if method != "otsu":
        raise SettingError(f"normalisation foreground {method!r} is not known; expected otsu or nonzero")
    smooth = ndimage.gaussian_filter(channel.astype(np.float32, copy=False), smoothing_voxels) if smoothing_voxels > 0 else channel
    mask = smooth > otsu_threshold(smooth)
    return ndimage.binary_fill_holes(mask)


def channel_normalisation(modality: str, stats: Mapping[str, float], mri: str = "foreground") -> dict[str, Any]:
    """The normalisation entry of one channel (see :mod:`pipeline.preprocessing.normalisation`), with its ``reason``.

    ``ct``: clip and z-score with the fingerprint's foreground statistics (Hounsfield units are
    absolute). ``mri``: ``zscore_foreground`` with an Otsu foreground of the smoothed image
    (exact-zero and noisy backgrounds give the same mask) and the background set to
    :data:`BACKGROUND` z units, below the tissue of any scan whatever its intensity range
    (the fingerprint's pooled raw statistics cannot give it: scans differ in scale).
    ``microscopy``/``other``: ``zscore_nonzero`` (their foreground is the objects
    themselves, which a threshold would cut).

    Args:
        stats: the fingerprint's ``intensity`` entry of the channel (``mean``, ``std``,
            ``percentile_00_5``, ``percentile_99_5`` over foreground samples; used for ct).
        mri: ``plan.mri_normalisation``: ``foreground`` (as above) or ``nonzero``
            (``zscore_nonzero`` for MRI too, the scheme the demo was tuned with).
    """
    if modality == "ct":
        return {
            "scheme": "ct",
            "clip": [stats["percentile_00_5"], stats["percentile_99_5"]],
            "mean": stats["mean"],
            "std": stats["std"],
            "reason": "CT intensities are absolute (Hounsfield units): dataset-wide clip and z-score",
        }
    if modality == "mri" and mri == "nonzero":
        return {
            "scheme": "zscore_nonzero",
            "reason": "MRI, plan.mri_normalisation nonzero: z-score inside the nonzero voxels (a noisy background counts as foreground)",
        }
    if modality == "mri":
        return {
            "scheme": "zscore_foreground",
            "foreground": "otsu",
            "smoothing_voxels": 1.0,
            "background": BACKGROUND,
            "reason": (
                "MRI intensities are relative and backgrounds differ between scans (noise, or exact zeros after skull stripping "
                f"or masking): z-score inside an Otsu foreground of the smoothed image, background set to {BACKGROUND}"
            ),
        }
    return {
        "scheme": "zscore_nonzero",
        "reason": f"{modality}: the foreground is the objects themselves, which a threshold would cut: z-score inside the nonzero voxels",
    }


def normalise(channel: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """Normalise one channel (any dtype and layout) as the plan says; returns a new float32 array.

    See the module docstring for the schemes. Memory: the output, a boolean mask and, for
    ``zscore_foreground``, one smoothed float32 copy.
    """
    scheme = settings["scheme"]
    if scheme == "ct":
        low, high = settings["clip"]
        out = np.clip(channel.astype(np.float32, copy=False), low, high)
        out -= np.float32(settings["mean"])
        out /= np.float32(max(settings["std"], 1e-8))
        return out
    if scheme == "zscore_foreground":
        mask = foreground_mask(channel, settings["foreground"], settings.get("smoothing_voxels", 1.0))
        background = np.float32(settings["background"])
    elif scheme == "zscore_nonzero":
        mask, background = channel != 0, np.float32(0.0)
    else:
        raise SettingError(f"normalisation scheme {scheme!r} is not known; expected ct, zscore_foreground or zscore_nonzero")
    if not mask.any():
        return np.full(channel.shape, background, dtype=np.float32)
    mean, std = masked_mean_std(channel, mask)
    out = channel.astype(np.float32, copy=True)
    out -= np.float32(mean)
    out /= np.float32(max(std, 1e-8))
    out[~mask] = background
    return out


def masked_mean_std(channel: np.ndarray, mask: np.ndarray, chunk: int = 1 << 22) -> tuple[float, float]:
    """Mean and standard deviation of ``channel[mask]`` in float64, chunk by chunk."""
    flat, where = channel.reshape(-1), mask.reshape(-1)
    count, total = 0, 0.0
    for start in range(0, flat.size, chunk):
        values = flat[start : start + chunk][where[start : start + chunk]].astype(np.float64)
        count += values.size
        total += float(values.sum())
    mean = total / count
    squares = 0.0
    for start in range(0, flat.size, chunk):
        values = flat[start : start + chunk][where[start : start + chunk]].astype(np.float64) - mean
        squares += float(np.dot(values, values))
    return mean, float(np.sqrt(squares / count))
