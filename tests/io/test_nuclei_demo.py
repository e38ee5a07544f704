"""The nuclei demo: tiles of the stardist wheel's fluorescence image and nucleus mask."""

import numpy as np
import pytest
import tifffile

from pipeline import stages
from pipeline.config import validate_config
from pipeline.demo import nuclei
from pipeline.io.dataset import dataset_table
from pipeline.io.images import read_image
from pipeline.io.manifest import read_manifest

CONFIG = {
    "dataset": {"demo": "nuclei", "dimensions": 2, "channels": [{"name": "fluorescence", "modality": "microscopy"}], "labels": {0: "background", 1: "nucleus"}},
    "demo": {"tile_size": 128, "test_cases": 3},
    "experiments": {"e": {}},
}


def test_tiles_are_cases_with_seeded_test_tiles():
    splits = nuclei.case_ids(128, 3, seed=0)
    assert len(splits) == 16 and list(splits.values()).count("test") == 3
    assert splits == nuclei.case_ids(128, 3, seed=0) != nuclei.case_ids(128, 3, seed=1)
    with pytest.raises(ValueError, match="between 1 and 15"):
        nuclei.case_ids(128, 16, seed=0)
    table = dataset_table(validate_config(CONFIG))
    assert list(table.columns) == ["case", "fluorescence", "label", "split"] and len(table) == 16
    with pytest.raises(ValueError, match="is 2D"):
        dataset_table(validate_config({**CONFIG, "dataset": {**CONFIG["dataset"], "dimensions": 3}}))


def test_a_tile_holds_the_image_and_the_nucleus_mask(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = validate_config(CONFIG)
    stages.make_demo_case(config, "nuclei_005")
    stages.make_demo_manifest(config, "results/demo/nuclei/manifest.tsv")
    row = read_manifest("results/demo/nuclei/manifest.tsv", ["fluorescence"]).loc["nuclei_005"]
    image, geometry = read_image(row["fluorescence"])
    label, label_geometry = read_image(row["label"], dtype=None)
    source = tifffile.imread(nuclei.source_path("image"))
    mask = tifffile.imread(nuclei.source_path("mask"))
    window = (slice(128, 256), slice(128, 256))  # tile 5 of a 4 x 4 grid: row 1, column 1
    assert np.array_equal(image, source[window].astype(np.float32))
    assert np.array_equal(label, (mask[window] > 0).astype(np.uint8)) and 0.05 < label.mean() < 0.6
    assert geometry == label_geometry and geometry.origin == (128.0, 128.0) and geometry.spacing == (1.0, 1.0)
    assert stages.check(config, "nuclei_005", tmp_path / "check.json")["class_counts"][1] == int(label.sum())
