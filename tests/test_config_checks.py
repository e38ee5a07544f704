"""Settings are checked when the config is read, and relative paths are relative to the config file.

Each bad setting is rejected with the key, the value found and what would be valid, through
``validate_config``/``load_config`` and through the command line (exit status 1, one line).
"""

import json
import os

import pytest

from pipeline.__main__ import main
from pipeline.config import load_config, resolve_paths, validate_config
from pipeline.errors import ConfigError, SettingError
from pipeline.models.registry import MODEL_NAMES, check_settings, model_settings
from tests.conftest import blob_case, write_volume

BASE = {"dataset": {"manifest": "m.tsv", "labels": {0: "bg", 1: "fg"}}, "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8, 16]}}}}


def _with(section: str, **values):
    config = json.loads(json.dumps(BASE))
    config.setdefault(section, {}).update(values)
    return config


def _cli_error(capsys, *argv) -> str:
    assert main(list(argv)) == 1
    return capsys.readouterr().err


# Duplicate keys -------------------------------------------------------------------------


def test_yaml_with_an_experiment_given_twice_is_refused_naming_key_and_lines(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        "dataset: {manifest: m.tsv, labels: {0: bg, 1: fg}}\nexperiments:\n  unet:\n    training: {epochs: 5}\n  unet:\n    training: {epochs: 50}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'experiments\.unet' appears twice \(lines 3 and 5\).*only the last would count"):
        load_config(path)
    err = _cli_error(capsys, "check", "--config", str(path))
    assert "experiments.unet' appears twice (lines 3 and 5)" in err and str(path) in err


def test_label_value_given_twice_in_yaml_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset:\n  manifest: m.tsv\n  labels:\n    0: bg\n    1: liver\n    '1': tumour\nexperiments: {e: {}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'dataset\.labels\.1' appears twice \(lines 5 and 6\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"dataset\.labels: label value\(s\) \['1'\] are given twice"):
        validate_config({"dataset": {"manifest": "m", "labels": {0: "bg", 1: "liver", "1": "tumour"}}, "experiments": {"e": {}}})


def test_json_config_with_a_key_twice_is_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"dataset": {"manifest": "m.tsv", "labels": {"0": "bg", "1": "fg"}}, "experiments": {"a": {}, "a": {}}}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.json: key\(s\) \['a'\] appear twice in one object"):
        load_config(path)


# Names and lengths ----------------------------------------------------------------------


def test_two_classes_or_two_channels_with_one_name_are_refused():
    with pytest.raises(ConfigError, match=r"dataset\.labels: class name 'liver' is given to values \[1, 2\]; each class needs its own name"):
        validate_config(_with("dataset", labels={0: "bg", 1: "liver", 2: "Liver"}))
    channels = [{"name": "t1", "modality": "mri"}, {"name": "T1", "modality": "mri"}]
    with pytest.raises(ConfigError, match=r"dataset\.channels: channel name 't1' is given twice \(\['t1', 'T1'\]\)"):
        validate_config(_with("dataset", channels=channels))


def test_patch_and_spacing_must_have_one_value_per_dimension():
    with pytest.raises(ConfigError, match=r"plan\.patch_size: \[64, 64\] has 2 values, dataset\.dimensions is 3: give 3 values \(z, y, x"):
        validate_config(_with("plan", patch_size=[64, 64]))
    with pytest.raises(ConfigError, match=r"plan\.target_spacing: \[1\.0, 1\.0, 1\.0\] has 3 values, dataset\.dimensions is 2"):
        validate_config({**_with("plan", target_spacing=[1.0, 1.0, 1.0]), "dataset": {**BASE["dataset"], "dimensions": 2}})
    bad = json.loads(json.dumps(BASE))
    bad["dataset"]["dimensions"] = 2
    bad["experiments"]["e"]["inference"] = {"mirror_axes": [0, 2]}
    with pytest.raises(ConfigError, match=r"experiments\.e\.inference\.mirror_axes: axis \[2\] does not exist in 2D images; use axes 0\.\.1"):
        validate_config(bad)


def test_all_problems_are_listed_at_once():
    config = _with("plan", patch_size=[64, 64])
    config["dataset"]["labels"] = {0: "bg", 1: "a", 2: "a"}
    with pytest.raises(ConfigError, match=r"2 problem\(s\)") as info:
        validate_config(config)
    assert "plan.patch_size" in str(info.value) and "class name 'a'" in str(info.value)


def test_a_batch_beyond_any_memory_is_refused_when_both_sizes_are_given():
    with pytest.raises(ConfigError, match=r"plan\.batch_size 4 x plan\.patch_size \[256, 256, 256\] = 67108864 voxels .* more than 33554432"):
        validate_config(_with("plan", patch_size=[256, 256, 256], batch_size=4))


# Model settings -------------------------------------------------------------------------


def _model(**settings):
    config = json.loads(json.dumps(BASE))
    config["experiments"]["e"]["model"] = {"name": "unet", "channels": [4, 8, 16], **settings}
    return config


def test_more_strides_than_levels_is_refused_at_validation(tmp_path, capsys):
    with pytest.raises(
        ConfigError,
        match=r"experiments\.e\.model \(unet, 3D\): strides must be an integer or a list of 2 entries "
        r"\(one per step between the 3 levels of channels \[4, 8, 16\].*got \[2, 2, 2\] \(3 entries\)",
    ):
        validate_config(_model(strides=[2, 2, 2]))
    with pytest.raises(ConfigError, match=r"kernel_size must be an integer or a list of 3 entries .* got \[3, 3\] \(2 entries\)"):
        validate_config(_model(kernel_size=[3, 3]))
    with pytest.raises(ConfigError, match=r"each strides entry must be a positive integer or a list of 3 positive integers, got \[2, 2\]"):
        validate_config(_model(strides=[[2, 2], 2]))
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(_model(strides=[2, 2, 2])), encoding="utf-8")  # JSON is YAML
    assert "experiments.e.model (unet, 3D): strides must be" in _cli_error(capsys, "check", "--config", str(path))


def test_other_model_checks_of_the_registry_run_at_validation():
    with pytest.raises(ConfigError, match=r"deep_supervision_heads must be an integer from 1 to len\(channels\) - 2 = 1 .* got 2 with channels=\[4, 8, 16\]"):
        validate_config(_model(deep_supervision=True, deep_supervision_heads=2))
    with pytest.raises(ConfigError, match=r"experiments\.e\.model \(deeplabv3plus, 3D\): Model setting strides=\[2, 2\] applies to \['segnet', 'unet'\] only"):
        validate_config({**BASE, "experiments": {"e": {"model": {"name": "deeplabv3plus", "strides": [2, 2]}}}})


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("dims", [2, 3])
def test_the_model_check_accepts_every_architecture_at_its_defaults(name, dims):
    check_settings(name, dims, {**model_settings(name), "deep_supervision": True}, in_channels=2, num_classes=3)
    check_settings(name, dims, model_settings(name))
    if name == "deeplabv3plus":
        check_settings(name, dims, {"backbone": "resnet", "separable_head": True, "decoder_channels": 48, "output_stride": 8})
    with pytest.raises(SettingError, match="dropout must be a probability"):
        check_settings(name, dims, {"dropout": 1.5})


def test_shipped_configs_pass_every_check():
    from tests.conftest import REPO

    for path in sorted((REPO / "config").glob("*.yaml")):
        assert load_config(path)["experiments"], path


# A patch larger than the images: the plan stage ------------------------------------------


def _plan_stage(tmp_path, capsys, plan, shapes):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**BASE, "plan": {"folds": 2, "target_spacing": [1.0, 1.0, 1.0], **plan}}), encoding="utf-8")
    fingerprint = tmp_path / "fingerprint.json"
    fingerprint.write_text(
        json.dumps(
            {
                "cases": [f"c{i}" for i in range(len(shapes))],
                "spacings": [[1.0, 1.0, 1.0]] * len(shapes),
                "shapes": shapes,
                "intensity": {"image": {}},
                "class_totals": {"bg": 10, "fg": 5},
            }
        ),
        encoding="utf-8",
    )
    argv = [
        "plan",
        "--config",
        str(config),
        "--fingerprint",
        str(fingerprint),
        "--output",
        str(tmp_path / "plans.json"),
        "--splits",
        str(tmp_path / "splits.json"),
    ]
    return main(argv), capsys.readouterr().err


def test_a_patch_larger_than_every_image_is_refused_by_the_plan_stage(tmp_path, capsys):
    code, err = _plan_stage(tmp_path, capsys, {"patch_size": [128, 128, 128], "batch_size": 2}, [[40, 60, 70], [50, 64, 80], [60, 70, 90]])
    assert code == 1
    assert "plan.patch_size [128, 128, 128] is larger along z, y, x than every image resampled to [1.0, 1.0, 1.0] mm" in err
    assert "the largest is [60, 70, 90], the median [50, 64, 80], the smallest [40, 60, 70] voxels" in err
    assert "use at most [64, 80, 96]" in err
    assert not (tmp_path / "plans.json").exists()
    code, err = _plan_stage(tmp_path, capsys, {"patch_size": [64, 128, 96], "batch_size": 2}, [[40, 60, 70], [50, 64, 80], [60, 70, 90]])
    assert code == 1 and "larger along y than every image" in err and "use at most [64, 80, 96]" in err
    code, _ = _plan_stage(tmp_path, capsys, {"patch_size": [64, 80, 96], "batch_size": 2}, [[40, 60, 70], [50, 64, 80], [60, 70, 90]])
    assert code == 0 and json.loads((tmp_path / "plans.json").read_text())["patch_size"] == [64, 80, 96]


def test_a_derived_batch_beyond_any_memory_is_refused_by_the_plan_stage(tmp_path, capsys):
    code, err = _plan_stage(tmp_path, capsys, {"patch_size": [320, 320, 320]}, [[320, 320, 320], [330, 330, 330]])
    assert code == 1
    assert "a training batch of 2 patch(es) of [320, 320, 320] holds 65536000 voxels, more than 33554432" in err
    assert "lower plan.patch_size or plan.batch_size" in err


# Relative paths -------------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_file_and_survive_results_config_json(tmp_path, monkeypatch):
    from pipeline.workflow.config_file import config_text

    folder = tmp_path / "project" / "config"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "dataset: {manifest: ../data/manifest.tsv, landmarks: points.tsv, labels: {0: bg, 1: fg}}\npredict: {input: ../scans}\nexperiments: {e: {}}\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(tmp_path / "project" / "config" / "config.yaml")
    assert config["dataset"]["manifest"] == str(tmp_path / "project" / "data" / "manifest.tsv")
    assert config["dataset"]["landmarks"] == str(folder / "points.tsv")
    assert config["predict"]["input"] == str(tmp_path / "project" / "scans")
    (elsewhere / "results").mkdir()
    (elsewhere / "results" / "config.json").write_text(config_text(config), encoding="utf-8")
    again = load_config("results/config.json")
    assert again["dataset"] == config["dataset"] and again["predict"] == config["predict"]
    # The workflow's own config.json keeps relative paths: relative to its working folder.
    (elsewhere / "results" / "config.json").write_text(
        config_text(validate_config({**BASE, "dataset": {**BASE["dataset"], "manifest": "data/m.tsv"}})), encoding="utf-8"
    )
    assert load_config("results/config.json")["dataset"]["manifest"] == "data/m.tsv"


def test_resolve_paths_can_keep_paths_inside_the_working_folder_relative(tmp_path):
    config = {"dataset": {"manifest": "../results/demo/m.tsv", "dataset_json": "/abs/dataset.json", "landmarks": None}, "predict": {"input": "~/scans"}}
    out = resolve_paths(config, tmp_path / "config", relative_to=tmp_path)
    assert out["dataset"]["manifest"] == os.path.join("results", "demo", "m.tsv")
    assert out["dataset"]["dataset_json"] == "/abs/dataset.json" and out["dataset"]["landmarks"] is None
    assert out["predict"]["input"] == os.path.expanduser("~/scans")
    assert config["dataset"]["manifest"] == "../results/demo/m.tsv"  # the input is not changed


def test_missing_manifest_and_dataset_json_name_the_resolved_path(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "m.yaml").write_text("dataset: {manifest: data/missing.tsv, labels: {0: bg, 1: fg}}\nexperiments: {e: {}}\n", encoding="utf-8")
    (folder / "j.yaml").write_text("dataset: {dataset_json: nnunet/dataset.json}\nexperiments: {e: {}}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    err = _cli_error(capsys, "check", "--config", "cfg/m.yaml")
    assert f"manifest {folder / 'data' / 'missing.tsv'} does not exist (looked for {folder / 'data' / 'missing.tsv'}; dataset.manifest names it)" in err
    err = _cli_error(capsys, "check", "--config", "cfg/j.yaml")
    assert f"dataset.json {folder / 'nnunet' / 'dataset.json'} does not exist (looked for {folder / 'nnunet' / 'dataset.json'}" in err
    # The manifest found where the config file says, with image paths relative to the manifest.
    image, label = blob_case()
    write_volume(folder / "data" / "images" / "c0.nii.gz", image)
    write_volume(folder / "data" / "labels" / "c0.nii.gz", label.astype("uint8"))
    (folder / "data" / "missing.tsv").write_text("case\timage\tlabel\nc0\timages/c0.nii.gz\tlabels/c0.nii.gz\n", encoding="utf-8")
    (folder / "m.yaml").write_text("dataset: {manifest: data/missing.tsv, labels: {0: bg, 1: a, 2: b}}\nexperiments: {e: {}}\n", encoding="utf-8")
    assert main(["check", "--config", "cfg/m.yaml"]) == 0
