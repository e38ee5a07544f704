"""Corruption of images for the denoising autoencoder: Gaussian noise and masked blocks.

Arrays are ``(C, *spatial)`` float32 in the preprocessed (normalised) intensity units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def corrupt(image: np.ndarray, settings: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """``image`` plus Gaussian noise (std ``noise_std``) with cubes of ``mask_size`` voxels
    set to 0 with probability ``mask_fraction`` each (a grid of cubes, offset at random).

    Returns a new float32 array; ``image`` is not changed.
    """
    out = np.asarray(image, dtype=np.float32).copy()
    if settings["noise_std"] > 0:
        out += rng.normal(0.0, settings["noise_std"], size=out.shape).astype(np.float32)
    if settings["mask_fraction"] > 0:
        size = int(settings["mask_size"])
        spatial = out.shape[1:]
        shift = rng.integers(0, size, size=len(spatial))
        cells = [(n + s) // size + 1 for n, s in zip(spatial, shift)]
        masked = rng.random(cells) < settings["mask_fraction"]
        for axis, (n, s) in enumerate(zip(spatial, shift)):
            masked = np.repeat(masked, size, axis=axis).take(np.arange(s, s + n), axis=axis)
        out[:, masked] = 0.0
    return out
