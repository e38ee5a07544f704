"""Config validation: defaults filled in, clear errors for unknown keys and wrong types."""

import pytest

from pipeline.config import load_config, validate_config
from pipeline.errors import ConfigError
from tests.conftest import REPO

MINIMAL = {"dataset": {"manifest": "m.tsv", "labels": {0: "bg", 1: "fg"}}, "experiments": {"a": {}}}


def test_defaults_are_filled_in_nested_and_per_experiment():
    config = validate_config(MINIMAL)
    assert config["plan"]["folds"] == 5
    assert config["experiments"]["a"]["training"]["optimizer"] == "sgd"
    assert config["experiments"]["a"]["training"]["augmentation"]["flip_prob"] == 0.5
    assert config["experiments"]["a"]["model"]["name"] == "unet"
    assert config["evaluation"]["empty_both"] in ("one", "nan")
    assert config["dataset"]["channels"] == [{"name": "image", "modality": "mri"}]


def test_unknown_key_is_named_with_the_nearest_valid_key():
    bad = {**MINIMAL, "experiments": {"a": {"training": {"epochz": 3}}}}
    with pytest.raises(ConfigError, match=r"unknown key 'epochz' in experiments\.a\.training; did you mean 'epochs'\?"):
        validate_config(bad)


def test_wrong_type_and_missing_required_key():
    with pytest.raises(ConfigError, match=r"plan\.folds: 'five' has the wrong type"):
        validate_config({**MINIMAL, "plan": {"folds": "five"}})
    with pytest.raises(ConfigError, match="'labels' is a required property"):
        validate_config({"dataset": {"manifest": "m.tsv"}, "experiments": {"a": {}}})


def test_labels_may_have_gaps_but_need_a_background_and_folds_must_exist():
    config = validate_config({**MINIMAL, "dataset": {"manifest": "m", "labels": {10: "b", 0: "bg", 2: "a"}}})
    assert list(config["dataset"]["labels"]) == ["0", "2", "10"]  # by value, not as text
    with pytest.raises(ConfigError, match=r"label values \[1, 2\] must include 0 \(the background\)"):
        validate_config({**MINIMAL, "dataset": {"manifest": "m", "labels": {1: "a", 2: "b"}}})
    with pytest.raises(ConfigError, match=r"within 0..65535"):
        validate_config({**MINIMAL, "dataset": {"manifest": "m", "labels": {0: "bg", 70000: "b"}}})
    with pytest.raises(ConfigError, match=r"fold\(s\) \[7\] do not exist"):
        validate_config({**MINIMAL, "experiments": {"a": {"training": {"folds": [7]}}}})


def test_shipped_config_is_valid_and_yaml_errors_name_the_file(tmp_path):
    config = load_config(REPO / "config" / "config.yaml")
    assert len(config["experiments"]) >= 2
    broken = tmp_path / "c.yaml"
    broken.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="c.yaml is not valid YAML"):
        load_config(broken)


def test_config_readme_documents_every_key_of_the_schema():
    from pipeline.config_docs import render

    assert (REPO / "config" / "README.md").read_text(encoding="utf-8") == render(), "regenerate: python -m pipeline.config_docs > config/README.md"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_rejected_naming_the_key(value):
    config = {
        "dataset": {"demo": "brain", "channels": [{"name": "t1", "modality": "mri"}], "labels": {0: "bg", 1: "gm"}},
        "experiments": {"e": {"training": {"learning_rate": value}}},
    }
    with pytest.raises(ConfigError, match=r"experiments\.e\.training\.learning_rate: .*must be finite"):
        validate_config(config)
