"""Registry of segmentation architectures and :func:`build_model`, the one way to create a model.

The model config is one flat object ``{name: <architecture>, **settings}`` (schema:
``workflow/schemas/model.schema.yaml``). Because schema validation fills in the default of every
setting, a config for one architecture also carries the defaults of settings that belong to others;
those are dropped silently. A setting that does not apply to the chosen architecture but was changed
from its default is an error, so an edit that would have no effect never passes unnoticed.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from pipeline.models.base import SegmentationModel
from pipeline.models.deeplabv3plus import DeepLabV3Plus
from pipeline.models.segnet import SegNet
from pipeline.models.unet import UNet

MODEL_REGISTRY: dict[str, type[SegmentationModel]] = {
    "unet": UNet,
    "deeplabv3plus": DeepLabV3Plus,
    "segnet": SegNet,
}
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_REGISTRY)

_POSITIONAL = ("self", "spatial_dims", "in_channels", "num_classes")


def model_settings(name: str) -> dict[str, Any]:
    """Settings (keyword arguments) of architecture ``name`` with their defaults."""
    signature = inspect.signature(_lookup(name).__init__)
    return {key: p.default for key, p in signature.parameters.items() if key not in _POSITIONAL}


def all_model_settings() -> dict[str, dict[str, Any]]:
    """For every setting of any architecture: ``{setting: {architecture: default}}``."""
    table: dict[str, dict[str, Any]] = {}
    for arch in MODEL_NAMES:
        for key, default in model_settings(arch).items():
            table.setdefault(key, {})[arch] = default
    return table


def _lookup(name: str) -> type[SegmentationModel]:
    if name not in MODEL_REGISTRY:
        raise ValueError(f"Unknown model name {name!r}; valid names are {list(MODEL_NAMES)}.")
    return MODEL_REGISTRY[name]


def _same(a: Any, b: Any) -> bool:
    """Compare a config value to a default, treating lists and tuples alike."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def build_model(name: str, spatial_dims: int, in_channels: int, num_classes: int, **settings: Any) -> nn.Module:
    """Create architecture ``name`` for ``spatial_dims``-D input with ``in_channels`` channels.

    The model maps ``B in_channels H W [D]`` float input of any size to logits
    ``B num_classes H W [D]`` (a list ``[full, aux1, ...]`` in training with deep supervision).

    Raises:
        ValueError: unknown ``name`` (the message lists the valid names), an unknown setting, a
            setting of another architecture set to a non-default value, or an invalid value.
    """
    cls = _lookup(name)
    own = model_settings(name)
    table = all_model_settings()
    kwargs = {}
    for key, value in settings.items():
        if key in own:
            kwargs[key] = value
        elif key not in table:
            raise ValueError(
                f"Unknown model setting {key!r} for {name!r}; valid settings for {name!r} are {sorted(own)}."
            )
        elif not all(_same(value, default) for default in table[key].values()):
            raise ValueError(
                f"Model setting {key}={value!r} applies to {sorted(table[key])} only, not to {name!r}; "
                f"remove it or use one of {sorted(own)}."
            )
    return cls(spatial_dims, in_channels, num_classes, **kwargs)
