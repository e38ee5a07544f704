"""Patch augmentation with MONAI dictionary transforms, every strength a config setting."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from monai import transforms as mt


def build_augmentation(settings: Mapping[str, Any], spatial_dims: int) -> Callable[[dict, int], dict] | None:
    """A function ``(sample, seed) -> sample`` over ``{"image": C*P, "label": 1*P}`` tensors.

    Transforms: flips per axis, rotation and scaling (one affine), intensity scale, shift
    and gamma, Gaussian noise, Gaussian blur, elastic deformation. Returns None when every
    probability is 0.
    """
    keys = ["image", "label"]
    chain: list[Any] = []
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
    p = settings["intensity_prob"]
    if p > 0:
        chain += [
            mt.RandScaleIntensityd("image", factors=0.1, prob=p),
            mt.RandShiftIntensityd("image", offsets=0.1, prob=p),
            mt.RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=p),
        ]
    if settings["noise_prob"] > 0:
        chain.append(mt.RandGaussianNoised("image", prob=settings["noise_prob"], std=0.1))
    if settings["blur_prob"] > 0:
        sigma = (0.5, 1.0)
        chain.append(mt.RandGaussianSmoothd("image", sigma_x=sigma, sigma_y=sigma, sigma_z=sigma, prob=settings["blur_prob"]))
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
