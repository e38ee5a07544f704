"""Conventions: validation, serialisation and agreement with the config schema."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline.evaluation import Conventions

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "evaluation.schema.yaml"


def test_defaults_documented_in_brief():
    conv = Conventions()
    assert conv.empty_both == "one"
    assert conv.empty_distance == "worst"
    assert conv.hd_percentile_method == "max_directed"
    assert conv.surface_tolerance_mm == 1.0
    assert conv.boundary == "face"
    assert conv.hd_percentile == 95.0


@pytest.mark.parametrize(
    "field, value",
    [("empty_both", "zero"), ("empty_distance", "inf"), ("hd_percentile_method", "mean"),
     ("boundary", "edge"), ("hd_percentile", 101), ("surface_tolerance_mm", -1.0),
     ("surface_tolerance_mm", {"liver": "far"})],
)  # fmt: skip
def test_invalid_values_name_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=field):
        Conventions(**{field: value})


def test_tolerance_mapping_lookup_and_as_dict():
    conv = Conventions(surface_tolerance_mm={"liver": 2.0, 3: 1.5, "default": 0.5})
    assert conv.tolerance_for(1, "liver") == 2.0
    assert conv.tolerance_for(3, "kidney") == 1.5
    assert conv.tolerance_for(7, "spleen") == 0.5
    assert conv.as_dict()["surface_tolerance_mm"] == {"3": 1.5, "default": 0.5, "liver": 2.0}
    hash(conv)  # frozen and hashable even with a mapping
    assert dataclasses.replace(conv, boundary="full").tolerance_for(1, "liver") == 2.0
    with pytest.raises(ValueError, match="spleen"):
        Conventions(surface_tolerance_mm={"liver": 2.0}).tolerance_for(7, "spleen")


def test_from_config_round_trip_and_unknown_keys():
    conv = Conventions(empty_both="nan", hd_percentile_method="pooled")
    assert Conventions.from_config(conv.as_dict()) == conv
    assert Conventions.from_config(None) == Conventions()
    with pytest.raises(ValueError, match="empty_bothh"):
        Conventions.from_config({"empty_bothh": "nan"})


def test_schema_matches_dataclass():
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    props = schema["properties"]
    fields = {f.name: f for f in dataclasses.fields(Conventions)}
    assert set(props) == set(fields)
    for name, spec in props.items():
        assert spec["default"] == fields[name].default, name
        assert spec["description"].strip(), name
    assert props["empty_both"]["enum"] == ["one", "nan"]
    assert set(props["hd_percentile_method"]["enum"]) == {"max_directed", "pooled"}


def test_schema_validates_config_and_fills_defaults():
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate({"surface_tolerance_mm": {"liver": 2, "default": 1}})
    assert not validator.is_valid({"empty_both": "zero"})
    assert not validator.is_valid({"unknown": 1})
    filled = {k: v["default"] for k, v in schema["properties"].items()}
    assert Conventions.from_config(filled) == Conventions()
