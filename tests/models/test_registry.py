"""build_model: names, settings, defaults and the schema in workflow/schemas/model.schema.yaml."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import torch
import yaml

from pipeline.models import MODEL_NAMES, all_model_settings, build_model, model_settings
from pipeline.models.registry import AUTO, AUTO_SETTINGS, _same, resolve_auto

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "model.schema.yaml"


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def with_defaults(config: dict) -> dict:
    """Fill in schema defaults, as snakemake.utils.validate(set_default=True) does."""
    schema = load_schema()
    jsonschema.Draft202012Validator(schema).validate(config)
    return {key: spec["default"] for key, spec in schema["properties"].items()} | config


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'vnet'; valid names are \['unet', 'deeplabv3plus', 'segnet'\]"):
        build_model("vnet", 2, 1, 2)


def test_unknown_setting_lists_the_valid_settings() -> None:
    with pytest.raises(ValueError, match=r"Unknown model setting 'widths' for 'unet'; valid settings .*'channels'"):
        build_model("unet", 2, 1, 2, widths=[4, 8])


def test_setting_of_another_architecture_is_an_error_unless_default() -> None:
    with pytest.raises(ValueError, match=r"upsample='nontrainable_linear' applies to \['unet'\] only, not to 'segnet'"):
        build_model("segnet", 2, 1, 2, channels=[2, 4], upsample="nontrainable_linear")
    build_model("segnet", 2, 1, 2, channels=[2, 4], upsample="deconv", backbone="xception")


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("unet", {"upsample": "bilinear"}, r"upsample must be one of \['deconv', 'nontrainable_linear', 'nontrai.*got 'bilinear'"),
        ("unet", {"norm": "group"}, r"norm must be one of \['batch', 'instance'\], got 'group'"),
        ("segnet", {"activation": "gelu"}, r"activation must be one of \['leakyrelu', 'relu'\], got 'gelu'"),
        ("unet", {"channels": [16]}, r"at least 2 positive integers .* got \[16\]"),
        ("unet", {"channels": [4, 8], "strides": [2, 2]}, r"strides must be an integer or a list of 1 entries .* got \[2, 2\]"),
        ("unet", {"channels": [4, 8], "strides": [[2, 2, 2]]}, r"list of 2 positive integers, got \[2, 2, 2\]"),
        ("unet", {"kernel_size": 4}, "kernel_size entries must be odd, got 4"),
        ("unet", {"dropout": 1.5}, r"dropout must be a probability in \[0, 1\), got 1.5"),
        ("unet", {"channels": [4, 8, 16], "deep_supervision": True, "deep_supervision_heads": 2}, "from 1 to len.channels. - 2 = 1"),
        ("segnet", {"convs_per_stage": 0}, "convs_per_stage must be a positive integer, got 0"),
        ("deeplabv3plus", {"output_stride": 32}, r"output_stride must be one of \[8, 16\], got 32"),
        ("deeplabv3plus", {"backbone": "mobilenet"}, r"backbone must be one of \['resnet', 'xception'\]"),
        ("deeplabv3plus", {"aspp_rates": [6, 0]}, r"aspp_rates must be a list of positive integer dilation rates, got \[6, 0\]"),
        ("deeplabv3plus", {"resnet_blocks": [2, 2]}, r"resnet_blocks must list 4 positive integers"),
        ("deeplabv3plus", {"decoder_convs": 0}, "decoder_convs must be a positive integer, got 0"),
        ("deeplabv3plus", {"deep_supervision": "yes"}, "deep_supervision must be true or false, got 'yes'"),
    ],
)
def test_bad_settings_raise_clear_errors(name: str, settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(name, 2, 1, 2, **settings)


def test_bad_arguments_and_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3, got 4"):
        build_model("unet", 4, 1, 2)
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        build_model("unet", 2, 1, 0)
    model = build_model("unet", 3, 2, 2, channels=[2, 4])
    with pytest.raises(ValueError, match=r"built for 3D expects input B C H W D, got shape \(1, 2, 8, 8\)"):
        model(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"in_channels=2 got an input with 1 channels"):
        model(torch.zeros(1, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="floating point tensor, got dtype torch.int64"):
        model(torch.zeros(1, 2, 8, 8, 8, dtype=torch.long))


def test_schema_lists_every_setting_with_the_code_default() -> None:
    schema = load_schema()
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert props["name"]["enum"] == list(MODEL_NAMES)
    table = all_model_settings()
    assert set(props) == {"name", *table}
    for key, spec in props.items():
        assert "default" in spec and spec.get("description"), key
        if key == "name":
            continue
        if key in AUTO_SETTINGS:  # the plan's; the code's default is what a plan-less build takes
            assert spec["default"] == AUTO, key
        else:
            for arch, default in table[key].items():
                assert _same(spec["default"], default), (key, arch)
        prefix = spec["description"].split(")")[0].strip("(").split(", ")  # "(unet, segnet) ..."
        applies_to = set(MODEL_NAMES) if prefix == ["all"] else {w for w in prefix if w in MODEL_NAMES}
        assert applies_to == set(table[key]), key


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_schema_filled_config_builds_every_architecture(name: str) -> None:
    """A config with only `name` gets every default filled in and still builds (defaults of other
    architectures are ignored)."""
    network = {
        "widths": [4, 8, 16],
        "strides": [[2, 2, 2], [1, 2, 2]],
        "kernel_sizes": [[3, 3, 3]] * 3,
        "deeplab": {"output_stride": 8, "aspp_rates": [1, 2, 3]},
    }
    config = resolve_auto(with_defaults({"name": name}), {"network": network})
    model = build_model(config.pop("name"), 3, 1, 4, **config)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_schema_rejects_unknown_keys_and_bad_enums() -> None:
    validator = jsonschema.Draft202012Validator(load_schema())
    assert not validator.is_valid({"name": "unet", "widths": [4]})
    assert not validator.is_valid({"name": "unet", "upsample": "bilinear"})
    assert validator.is_valid({"name": "unet", "strides": [2, [2, 2, 1]], "kernel_size": [[3, 3, 1], 3]})


def test_model_settings_reports_defaults() -> None:
    assert model_settings("unet")["upsample"] == "deconv"
    assert model_settings("deeplabv3plus")["output_stride"] == 16
