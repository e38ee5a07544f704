"""Patch augmentation with MONAI dictionary transforms, every strength a config setting."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from monai import transforms as mt


def build_augmentation(settings: Mapping[str, Any], spatial_dims: int) -> Callable[[dict, int], dict] | None:
    """A function ``(sample, seed) -> sample`` over ``{"image": C*P, "label": 1*P}`` tensors.

    Transforms: flips per axis, rotation and scaling (one affine), intensity scale, shift
    and gamma, Gaussian noise. Returns None when every probability is 0.
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
    if not chain:
        return None
    compose = mt.Compose(chain)

    def apply(sample: dict, seed: int) -> dict:
        compose.set_random_state(seed=seed)
        out = compose(sample)
        return {"image": out["image"].as_tensor() if hasattr(out["image"], "as_tensor") else out["image"], "label": out["label"].as_tensor() if hasattr(out["label"], "as_tensor") else out["label"]}

    return apply
