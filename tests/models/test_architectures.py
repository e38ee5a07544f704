"""One shared test over every architecture, 2D and 3D, and every variant that changes the graph.

Inputs are deliberately not divisible by any network stride (2D 19x23, 3D 13x11x9).
"""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.losses import build_loss
from pipeline.models import MODEL_NAMES, build_model

SHAPES = {2: (2, 2, 19, 23), 3: (1, 2, 13, 11, 9)}
NUM_CLASSES = 3

VARIANTS: dict[str, dict] = {
    "unet-deconv": dict(name="unet", channels=[4, 8, 16, 16], upsample="deconv"),
    "unet-nearest": dict(name="unet", channels=[4, 8, 16], upsample="nontrainable_nearest"),
    "unet-linear": dict(name="unet", channels=[4, 8, 16], upsample="nontrainable_linear"),
    "unet-residual-batch-aniso": dict(name="unet", channels=[4, 8, 16], strides=[2, [2, 1, 1]], residual=True, norm="batch", dropout=0.1),
    "segnet": dict(name="segnet", channels=[4, 8, 16, 16]),
    "segnet-relu-batch": dict(name="segnet", channels=[4, 8], convs_per_stage=1, norm="batch", activation="relu"),
    "deeplab-xception-os16": dict(name="deeplabv3plus", base_channels=2, xception_middle_blocks=1),
    "deeplab-xception-os8": dict(name="deeplabv3plus", base_channels=2, xception_middle_blocks=0, output_stride=8, aspp_rates=[2]),
    "deeplab-resnet-os8": dict(name="deeplabv3plus", backbone="resnet", base_channels=2, resnet_blocks=[1, 1, 1, 1], output_stride=8),
    "deeplab-resnet-separable": dict(
        name="deeplabv3plus", backbone="resnet", base_channels=2, resnet_blocks=[1, 1, 1, 1], decoder_channels=6, separable_head=True, dropout=0.1
    ),
    "deeplab-one-decoder-conv": dict(name="deeplabv3plus", base_channels=2, xception_middle_blocks=0, decoder_convs=1, dropout=0.1),
}


def test_every_architecture_is_covered() -> None:
    assert {v["name"] for v in VARIANTS.values()} == set(MODEL_NAMES)


def _check_gradients(model: torch.nn.Module) -> None:
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_backward_any_size(variant: str, spatial_dims: int) -> None:
    settings = dict(VARIANTS[variant])
    if spatial_dims == 2 and isinstance(settings.get("strides"), list):
        settings["strides"] = [2, [2, 1]]
    model = build_model(settings.pop("name"), spatial_dims, 2, NUM_CLASSES, **settings)
    x = torch.randn(SHAPES[spatial_dims])
    model.train()
    out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (x.shape[0], NUM_CLASSES, *x.shape[2:])
    (out.float() ** 2).mean().backward()
    _check_gradients(model)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == out.shape


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("variant", ["unet-deconv", "segnet", "deeplab-xception-os16"])
def test_deep_supervision_list_in_training_tensor_in_eval(variant: str, spatial_dims: int) -> None:
    settings = dict(VARIANTS[variant])
    model = build_model(settings.pop("name"), spatial_dims, 2, NUM_CLASSES, deep_supervision=True, **settings)
    x = torch.randn(SHAPES[spatial_dims])
    outputs = model.train()(x)
    assert isinstance(outputs, list) and len(outputs) >= 2
    assert outputs[0].shape == (x.shape[0], NUM_CLASSES, *x.shape[2:])
    factors = {"unet-deconv": [2, 4], "segnet": [2, 4], "deeplab-xception-os16": [16]}[variant]
    assert len(outputs) == 1 + len(factors)
    for aux, factor in zip(outputs[1:], factors):  # cropped to the part covering the input
        assert aux.shape == (x.shape[0], NUM_CLASSES, *(math.ceil(n / factor) for n in x.shape[2:]))
    target = torch.randint(0, NUM_CLASSES, (x.shape[0], 1, *x.shape[2:]))
    build_loss("dice_ce", [1.0, 2.0, 3.0])(outputs, target).backward()
    _check_gradients(model)
    with torch.no_grad():
        single = model.eval()(x)
    assert isinstance(single, torch.Tensor) and single.shape == outputs[0].shape


def test_unet_deep_supervision_head_count() -> None:
    model = build_model("unet", 2, 1, 2, channels=[4, 4, 4, 4, 4], deep_supervision=True, deep_supervision_heads=3)
    outputs = model.train()(torch.randn(1, 1, 33, 20))
    assert [tuple(o.shape[2:]) for o in outputs] == [(33, 20), (17, 10), (9, 5), (5, 3)]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tiny_input_smaller_than_the_stride(name: str) -> None:
    """An input smaller than the total stride is padded enough for instance norm to work."""
    settings = {
        "unet": dict(channels=[2, 4, 4, 4]),
        "segnet": dict(channels=[2, 4, 4, 4]),
        "deeplabv3plus": dict(base_channels=1, xception_middle_blocks=0),
    }[name]
    model = build_model(name, 3, 1, 2, **settings).train()
    out = model(torch.randn(1, 1, 3, 1, 2))
    assert out.shape == (1, 2, 3, 1, 2)


def test_padding_does_not_leak_into_the_image_region_for_divisible_inputs() -> None:
    """Padding is a no-op for an input that already fits the stride: results match an unpadded run."""
    model = build_model("unet", 2, 1, 2, channels=[2, 4]).eval()
    x = torch.randn(1, 1, 8, 6)
    with torch.no_grad():
        direct = model.forward_padded(x, with_aux=False)[0]
        assert torch.equal(model(x), direct)
