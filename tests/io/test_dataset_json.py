"""nnU-Net v2 / MSD raw datasets: dataset.json, imagesTr/labelsTr/imagesTs/labelsTs."""

import json

import numpy as np
import pytest

from pipeline.config import validate_config
from pipeline.errors import CaseError, ConfigError
from pipeline.io.cases import ManifestError
from pipeline.io.check import check_case
from pipeline.io.dataset import dataset_table
from tests.conftest import blob_case, write_volume

INFO = {"channel_names": {"0": "T2", "1": "ADC"}, "labels": {"background": 0, "zone": 1, "lesion": 2}, "numTraining": 3, "file_ending": ".nii.gz"}


def make_dataset(root, train=("p1", "p2", "p3"), test=(), test_labels=True, info=None):
    """Write an nnU-Net v2 raw dataset with two channels per case; return dataset.json's path."""
    for folder, cases in (("Tr", train), ("Ts", test)):
        for i, case in enumerate(cases):
            image, label = blob_case(seed=i)
            write_volume(root / f"images{folder}" / f"{case}_0000.nii.gz", image)
            write_volume(root / f"images{folder}" / f"{case}_0001.nii.gz", image * 0.5 + 3)
            if folder == "Tr" or test_labels:
                write_volume(root / f"labels{folder}" / f"{case}.nii.gz", label)
    path = root / "dataset.json"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info or INFO))
    return path


def config_for(path, **dataset):
    return validate_config({"dataset": {"dataset_json": str(path), **dataset}, "experiments": {"e": {}}})


def test_channels_and_labels_come_from_dataset_json(tmp_path):
    config = config_for(make_dataset(tmp_path, test=("q1",)))
    assert config["dataset"]["channels"] == [{"name": "T2", "modality": "mri"}, {"name": "ADC", "modality": "mri"}]
    assert config["dataset"]["labels"] == {"0": "background", "1": "zone", "2": "lesion"}
    table = dataset_table(config)
    assert list(table.columns) == ["case", "T2", "ADC", "label", "split"]
    assert list(table["case"]) == ["p1", "p2", "p3", "q1"]
    assert list(table["split"]) == ["train", "train", "train", "test"]
    assert table.loc["q1", "ADC"] == str(tmp_path.resolve() / "imagesTs" / "q1_0001.nii.gz")
    assert table.loc["p2", "label"] == str(tmp_path.resolve() / "labelsTr" / "p2.nii.gz")


def test_test_list_holds_out_training_cases_and_unlabelled_imagests_are_ignored(tmp_path):
    info = {**INFO, "labels": {"0": "background", "1": "zone", "2": "lesion"}, "test": ["p2", "./imagesTr/p3_0000.nii.gz"]}
    path = make_dataset(tmp_path, test=("q1",), test_labels=False, info=info)
    table = dataset_table(config_for(path))
    assert table["split"].to_dict() == {"p1": "train", "p2": "test", "p3": "test"}


def test_given_channels_and_labels_must_agree(tmp_path):
    path = make_dataset(tmp_path)
    labels = {0: "background", 1: "zone", 2: "lesion"}
    ok = config_for(path, channels=[{"name": "t2", "modality": "mri"}, {"name": "adc", "modality": "other"}], labels=labels)
    assert [c["modality"] for c in ok["dataset"]["channels"]] == ["mri", "other"]
    with pytest.raises(ConfigError, match=r"dataset.channels \['ADC', 'T2'\] do not match channel_names \['T2', 'ADC'\]"):
        config_for(path, channels=[{"name": "ADC"}, {"name": "T2"}], labels=labels)
    with pytest.raises(ConfigError, match="do not match channel_names"):
        config_for(path, channels=[{"name": "T2"}], labels=labels)
    with pytest.raises(ConfigError, match="dataset.labels .* do not match the labels"):
        config_for(path, labels={0: "background", 1: "lesion", 2: "zone"})
    with pytest.raises(ConfigError, match="both set"):
        config_for(path, manifest="m.tsv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        (json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0}}), r"lacks \['file_ending'\]"),
        (json.dumps({"modality": {"0": "CT"}, "labels": {"0": "bg", "1": "a"}, "training": []}), "original MSD layout"),
        (json.dumps({**INFO, "labels": {"background": 0, "whole": [1, 2]}}), "regions"),
        (json.dumps({**INFO, "labels": {"a": 1, "b": 2}}), "include 0 \\(the background\\)"),
    ],
)
def test_bad_dataset_json_names_the_file(tmp_path, text, message):
    path = tmp_path / "dataset.json"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message) as info:
        config_for(path)
    assert str(path) in str(info.value)


def test_missing_channel_file_fails_only_that_case(tmp_path):
    path = make_dataset(tmp_path)
    (tmp_path / "imagesTr" / "p2_0001.nii.gz").unlink()
    config = config_for(path)
    table = dataset_table(config)
    labels = {0: "bg", 1: "zone", 2: "lesion"}
    row = table.loc["p1"]
    assert check_case("p1", [row["T2"], row["ADC"]], row["label"], labels, 3, 1e-3)["class_counts"][2] > 0
    row = table.loc["p2"]
    with pytest.raises(CaseError, match="p2_0001.nii.gz: file does not exist"):
        check_case("p2", [row["T2"], row["ADC"]], row["label"], labels, 3, 1e-3)


def test_dataset_level_problems(tmp_path):
    path = make_dataset(tmp_path / "extra")
    write_volume(tmp_path / "extra" / "imagesTr" / "p1_0002.nii.gz", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ManifestError, match=r"channel file\(s\) \['p1_0002.nii.gz'\] beyond the 2 channel"):
        dataset_table(config_for(path))
    path = make_dataset(tmp_path / "odd")
    write_volume(tmp_path / "odd" / "imagesTr" / "scan.nii.gz", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ManifestError, match="not named <case>_<XXXX>.nii.gz"):
        dataset_table(config_for(path))
    path = make_dataset(tmp_path / "empty", train=())
    with pytest.raises(ManifestError, match="has no cases"):
        dataset_table(config_for(path))
    path = make_dataset(tmp_path / "unknown", info={**INFO, "test": ["nope"]})
    with pytest.raises(ManifestError, match=r"'test' lists case\(s\) \['nope'\]"):
        dataset_table(config_for(path))
    path = make_dataset(tmp_path / "nolabel", test=("q1",), test_labels=False, info={**INFO, "test": ["q1"]})
    with pytest.raises(ManifestError, match="test case 'q1' .* has no label"):
        dataset_table(config_for(path))


def test_dataset_entry_lists_files_explicitly(tmp_path):
    make_dataset(tmp_path)
    info = {**INFO, "dataset": {"p1": {"images": ["imagesTr/p1_0000.nii.gz", "imagesTr/p1_0001.nii.gz"], "label": "labelsTr/p1.nii.gz"},
                                "p3": {"images": ["imagesTr/p3_0000.nii.gz", "imagesTr/p3_0001.nii.gz"], "label": "labelsTr/p3.nii.gz"}}, "test": ["p3"]}  # fmt: skip
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    table = dataset_table(config_for(tmp_path / "dataset.json"))
    assert table["split"].to_dict() == {"p1": "train", "p3": "test"}
    assert table.loc["p1", "ADC"].endswith("imagesTr/p1_0001.nii.gz")
