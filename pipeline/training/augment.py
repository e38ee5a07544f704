"""Patch augmentation with MONAI dictionary transforms, every strength a config setting.

Besides the spatial transforms, the chain covers the ways real scans differ from the
training cases: background (noisy or flat), intensity scale, offset, gamma (of the image and
of its inverse), contrast, bias field, noise level, blur and low resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from monai import transforms as mt


class AroundMinimum(mt.Randomizable, mt.MapTransform):
    """Apply a multiplicative array transform to ``image - min`` per channel, then add ``min`` back.

    A bias field multiplies the scanner's intensities, which are 0 where there is no signal;
    after normalisation that level is the patch minimum, so the field is applied around it
    (multiplying z-scores around 0 would flip the dark half).
    """

    def __init__(self, keys: str, inner: mt.RandomizableTransform) -> None:
        mt.MapTransform.__init__(self, keys)
        self.inner = inner

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> AroundMinimum:
        self.inner.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Randomness lives in :attr:`inner`."""

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key in self.keys:
            image = torch.as_tensor(out[key])
            low = image.reshape(image.shape[0], -1).min(dim=1).values.reshape(-1, *([1] * (image.ndim - 1)))
            out[key] = torch.as_tensor(self.inner(image - low)) + low
        return out


class RandBackgroundd(mt.RandomizableTransform, mt.MapTransform):
    """Make the flat background of a patch noisy, or flatten a noisy one (per channel).

    The background is the voxels within ``3 * noise_std`` of the channel's minimum. With
    probability ``prob`` either (half the time each) they get Gaussian noise of a standard
    deviation drawn from ``[0, noise_std]`` (a scan with a noisy background), or they are
    all set to the minimum (a scan skull-stripped or masked to exact zeros).
    """

    def __init__(self, keys: str, prob: float, noise_std: float) -> None:
        mt.RandomizableTransform.__init__(self, prob)
        mt.MapTransform.__init__(self, keys)
        self.noise_std = float(noise_std)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        self.randomize(None)
        out = dict(data)
        if not self._do_transform:
            return out
        noisy = self.R.rand() < 0.5
        std = self.R.uniform(0.0, self.noise_std)
        for key in self.keys:
            image = torch.as_tensor(out[key]).clone()
            for c in range(image.shape[0]):
                low = image[c].min()
                background = image[c] <= low + 3.0 * self.noise_std
                if noisy:
                    noise = torch.as_tensor(self.R.normal(0.0, std, size=int(background.sum())), dtype=image.dtype)
                    image[c][background] = low + noise.abs()
                else:
                    image[c][background] = low
            out[key] = image
        return out


def _intensity_chain(settings: Mapping[str, Any]) -> list[Any]:
    """Scale, offset, contrast and gamma, each with ``intensity_prob``; gamma of the inverted image with ``gamma_invert_prob``."""
    p = settings["intensity_prob"]
    gamma = tuple(settings["gamma_range"])
    chain = []
    if p > 0:
        chain += [
            mt.RandScaleIntensityd("image", factors=settings["intensity_scale"], prob=p),
            mt.RandShiftIntensityd("image", offsets=settings["intensity_shift"], prob=p),
            *([mt.RandScaleIntensityFixedMeand("image", factors=settings["contrast"], prob=p, preserve_range=False)] if settings["contrast"] > 0 else []),
            mt.RandAdjustContrastd("image", gamma=gamma, prob=p),
        ]
    if settings["gamma_invert_prob"] > 0:
        chain.append(mt.RandAdjustContrastd("image", gamma=gamma, prob=settings["gamma_invert_prob"], invert_image=True, retain_stats=True))
    return chain


def build_augmentation(settings: Mapping[str, Any], spatial_dims: int) -> Callable[[dict, int], dict] | None:
    """A function ``(sample, seed) -> sample`` over ``{"image": C*P, "label": 1*P}`` tensors.

    Order: background (noisy or flat), flips per axis, rotation and scaling (one affine),
    bias field, intensity scale/offset/contrast/gamma, Gaussian noise, Gaussian blur,
    simulated low resolution, elastic deformation. Returns None when every probability is 0.
    """
    keys = ["image", "label"]
    chain: list[Any] = []
    if settings["background_prob"] > 0:
        chain.append(RandBackgroundd("image", settings["background_prob"], settings["background_noise_std"]))
    if settings["flip_prob"] > 0:
        chain += [mt.RandFlipd(keys, prob=settings["flip_prob"], spatial_axis=axis) for axis in range(spatial_dims)]
    if settings["affine_prob"] > 0:
        angle = math.radians(settings["rotate_deg"])
        chain.append(
            mt.RandAffined(
                keys,
                prob=settings["affine_prob"],
                rotate_range=[angle] * (1 if spatial_dims == 2 else 3),
                scale_range=[settings["scale"]] * spatial_dims,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            )
        )
    if settings["bias_field_prob"] > 0:
        field = mt.RandBiasField(degree=3, coeff_range=(0.0, settings["bias_field_coeff"]), prob=settings["bias_field_prob"])
        chain.append(AroundMinimum("image", field))
    chain += _intensity_chain(settings)
    if settings["noise_prob"] > 0:
        chain.append(mt.RandGaussianNoised("image", prob=settings["noise_prob"], std=settings["noise_std"]))
    if settings["blur_prob"] > 0:
        sigma = (0.5, 1.0)
        chain.append(mt.RandGaussianSmoothd("image", sigma_x=sigma, sigma_y=sigma, sigma_z=sigma, prob=settings["blur_prob"]))
    if settings["lowres_prob"] > 0:
        chain.append(mt.RandSimulateLowResolutiond("image", prob=settings["lowres_prob"], zoom_range=tuple(settings["lowres_zoom"])))
    if settings["elastic_prob"] > 0:
        elastic = mt.Rand3DElasticd if spatial_dims == 3 else mt.Rand2DElasticd
        kwargs = {"sigma_range": (5, 7), "magnitude_range": (50, 150)} if spatial_dims == 3 else {"spacing": (20, 20), "magnitude_range": (1, 2)}
        chain.append(elastic(keys, prob=settings["elastic_prob"], mode=("bilinear", "nearest"), padding_mode="zeros", **kwargs))
    if not chain:
        return None
    compose = mt.Compose(chain)

    def apply(sample: dict, seed: int) -> dict:
        compose.set_random_state(seed=seed)
        out = compose(sample)
        return {
            "image": out["image"].as_tensor() if hasattr(out["image"], "as_tensor") else out["image"],
            "label": out["label"].as_tensor() if hasattr(out["label"], "as_tensor") else out["label"],
        }

    return apply
