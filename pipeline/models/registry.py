"""Registry of segmentation architectures and :func:`build_model`, the one way to create a model.

The model config is one flat object ``{name: <architecture>, **settings}`` (schema:
``workflow/schemas/model.schema.yaml``). Because schema validation fills in the default of every
setting, a config for one architecture also carries the defaults of settings that belong to others;
those are dropped silently. A setting that does not apply to the chosen architecture but was changed
from its default is an error, so an edit that would have no effect never passes unnoticed.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from pipeline.errors import SettingError
from pipeline.models.base import SegmentationModel
from pipeline.models.deeplabv3plus import DeepLabV3Plus
from pipeline.models.layers import check_aux_heads, level_layout
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
        raise SettingError(f"Unknown model name {name!r}; valid names are {list(MODEL_NAMES)}.")
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
            raise SettingError(f"Unknown model setting {key!r} for {name!r}; valid settings for {name!r} are {sorted(own)}.")
        elif not all(_same(value, default) for default in table[key].values()):
            raise SettingError(f"Model setting {key}={value!r} applies to {sorted(table[key])} only, not to {name!r}; remove it or use one of {sorted(own)}.")
    return cls(spatial_dims, in_channels, num_classes, **kwargs)


#: Settings that ``auto`` takes from the plan's ``network`` section, and the plan key of each
#: (a path of keys).
AUTO_SETTINGS = {
    "channels": ("widths",),
    "strides": ("strides",),
    "kernel_size": ("kernel_sizes",),
    "output_stride": ("deeplab", "output_stride"),
    "aspp_rates": ("deeplab", "aspp_rates"),
}
AUTO = "auto"


def _own_autos(model: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """The settings without the ``auto`` of settings that belong to other architectures than
    ``name`` (default ``model["name"]``): the schema's ``channels: auto`` on a DeepLabV3+ means nothing."""
    name = name or model.get("name", "unet")
    own = model_settings(name) if name in MODEL_REGISTRY else {}
    return {k: v for k, v in model.items() if not (k in AUTO_SETTINGS and v == AUTO and k not in own)}


def resolve_auto(model: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """The model settings with every ``auto`` of :data:`AUTO_SETTINGS` replaced by the plan's
    derived topology (``plan["network"]``: widths per stage, strides and kernel sizes per stage
    and axis, numpy order; DeepLabV3+'s output stride and ASPP rates); settings written out
    are kept as they are, and ``auto`` settings of other architectures are dropped.

    With ``channels`` written out (a depth of its own) and ``strides``/``kernel_size`` auto, the
    plan's first ``len(channels) - 1`` strides and ``len(channels)`` kernels are taken when the
    plan has that many stages, else (and with a plan made before topologies were planned)
    stride 2 and kernel 3 everywhere.

    Raises:
        SettingError: ``auto`` with a plan that has no ``network`` section (a plan made before
            topologies were planned: rerun the plan stage).
    """
    resolved = _own_autos(model)
    wanted = [key for key in AUTO_SETTINGS if resolved.get(key) == AUTO]
    if not wanted:
        return resolved
    network = plan.get("network")
    depth = resolved.get("channels") if isinstance(resolved.get("channels"), (list, tuple)) else None
    if not network and depth is not None and set(wanted) <= {"strides", "kernel_size"}:  # a plan without a topology
        return {**resolved, **{key: {"strides": None, "kernel_size": 3}[key] for key in wanted}}
    if not network:
        raise SettingError(f"model settings {wanted} are 'auto' but the plan has no 'network' section; rerun the plan stage (plans.json)")
    for key in wanted:
        value: Any = network
        for part in AUTO_SETTINGS[key]:
            if not isinstance(value, Mapping) or part not in value:
                raise SettingError(
                    f"model setting {key} is 'auto' but the plan's network has no {'.'.join(AUTO_SETTINGS[key])}; rerun the plan stage (plans.json)"
                )
            value = value[part]
        resolved[key] = [list(v) if isinstance(v, (list, tuple)) else v for v in value] if isinstance(value, (list, tuple)) else value
    if depth is not None:
        levels = len(depth)
        if "strides" in wanted:
            resolved["strides"] = resolved["strides"][: levels - 1] if len(resolved["strides"]) >= levels - 1 else None
        if "kernel_size" in wanted:
            resolved["kernel_size"] = resolved["kernel_size"][:levels] if len(resolved["kernel_size"]) >= levels else 3
    return resolved


def build_network(architecture: Mapping[str, Any]) -> nn.Module:
    """The dense network an architecture dict describes (``model`` settings with their
    ``name``, ``spatial_dims``, ``in_channels``, ``num_classes``), as stored in checkpoints."""
    settings = {k: v for k, v in architecture["model"].items() if k != "name"}
    return build_model(architecture["model"]["name"], architecture["spatial_dims"], architecture["in_channels"], architecture["num_classes"], **settings)


def _auto_placeholders(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``auto`` settings replaced by values of a consistent layout, for checks made before the plan
    exists: as many levels as an explicit ``channels``/``strides``/``kernel_size`` list implies
    (else the default depth), strides 2 and kernels 3."""
    filled = _own_autos(settings, name)
    if not any(filled.get(key) == AUTO for key in AUTO_SETTINGS):
        return filled
    levels = len(model_settings("unet")["channels"])
    channels, strides, kernels = (filled.get(k) for k in ("channels", "strides", "kernel_size"))
    if isinstance(channels, (list, tuple)):
        levels = len(channels)
    elif isinstance(strides, (list, tuple)):
        levels = len(strides) + 1
    elif isinstance(kernels, (list, tuple)):
        levels = len(kernels)
    placeholders = {"channels": [1] * levels, "strides": None, "kernel_size": 3, "output_stride": 8, "aspp_rates": [1, 2, 3]}
    for key in AUTO_SETTINGS:
        if filled.get(key) == AUTO:
            filled[key] = placeholders[key]
    return filled


#: Width settings that :func:`check_settings` shrinks to one feature map (lists: per level).
_WIDTHS = ("channels", "base_channels", "decoder_channels")


def check_settings(name: str, spatial_dims: int, settings: Mapping[str, Any], in_channels: int = 1, num_classes: int = 2) -> None:
    """Check a model config as :func:`build_model` would, without building the network.

    The level layout (``strides``/``kernel_size`` against ``channels``) and the auxiliary
    heads are checked with the given values; then the architecture is built with one
    feature map per level (``channels``, ``base_channels``, ``decoder_channels`` shrunk to 1,
    milliseconds and a few hundred parameters), so that every check of :func:`build_model`
    and of the constructor runs.

    Raises:
        SettingError: as :func:`build_model`, naming the setting, its value and what is valid.
    """
    own = model_settings(name)
    settings = _auto_placeholders(settings, name)
    values = {key: settings.get(key, default) for key, default in own.items()}
    if "channels" in own:
        level_layout(values["channels"], values.get("strides"), values.get("kernel_size", 3), spatial_dims)
        if "deep_supervision_heads" in own and values.get("deep_supervision") is True:
            check_aux_heads(values["deep_supervision_heads"], values["channels"])
    tiny = dict(settings)
    for key in _WIDTHS:
        value = tiny.get(key)
        if key not in own or value is None or isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 1:
            tiny[key] = 1
        elif isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            tiny[key] = [1] * len(value)
    build_model(name, spatial_dims, in_channels, num_classes, **tiny)
