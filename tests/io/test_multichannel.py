"""Two input channels per case (multi-modal MRI) through check, fingerprint, plan, preprocess,
training (in_channels = 2) and prediction back on the original grid."""

import json

import numpy as np
import torch

from pipeline import stages
from pipeline.config import validate_config
from pipeline.io.dataset import dataset_table
from pipeline.io.images import read_image
from tests.conftest import blob_case, write_volume

SPACING = (0.9, 1.0, 1.5)


def test_two_channels_end_to_end(tmp_path):
    lines = ["case\tt2\tadc\tlabel\tsplit"]
    for i in range(5):
        image, label = blob_case(seed=i)
        write_volume(tmp_path / f"t2_{i}.nii.gz", image, spacing=SPACING)
        write_volume(tmp_path / f"adc_{i}.nii.gz", (1000.0 - 5 * image).astype(np.float32), spacing=SPACING)
        write_volume(tmp_path / f"l_{i}.nii.gz", label, spacing=SPACING)
        lines.append(f"c{i}\tt2_{i}.nii.gz\tadc_{i}.nii.gz\tl_{i}.nii.gz\t{'test' if i == 4 else 'train'}")
    (tmp_path / "m.tsv").write_text("\n".join(lines) + "\n")
    config = validate_config({
        "dataset": {"manifest": str(tmp_path / "m.tsv"), "channels": [{"name": "t2"}, {"name": "adc", "modality": "other"}], "labels": {0: "bg", 1: "outer", 2: "inner"}},
        "plan": {"folds": 2, "patch_size": [8, 8, 8], "batch_size": 2},
        "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}, "training": {"epochs": 1, "iterations_per_epoch": 2, "validate_every": 1, "num_workers": 0}}},
    })  # fmt: skip
    table = dataset_table(config)
    checks = []
    for case in table.index:
        checks.append(tmp_path / "checks" / f"{case}.json")
        result = stages.check(config, case, checks[-1])
        assert len(result["intensity_samples"]) == 2
    fingerprint = stages.fingerprint(config, checks, tmp_path / "fingerprint.json")
    assert set(fingerprint["intensity"]) == {"t2", "adc"}
    assert fingerprint["intensity"]["adc"]["mean"] > fingerprint["intensity"]["t2"]["mean"]
    plan = stages.plan(config, tmp_path / "fingerprint.json", tmp_path / "plans.json", tmp_path / "splits.json")
    assert plan["channels"] == ["t2", "adc"] and set(plan["normalisation"]) == {"t2", "adc"}
    for case in table.index:
        stages.preprocess(config, case, tmp_path / "plans.json", tmp_path / "pre" / case)
        image = np.load(tmp_path / "pre" / case / "image.npy")
        assert image.shape[0] == 2
        inside = image[1][image[1] != 0]
        assert abs(float(inside.mean())) < 1e-3  # each channel normalised on its own
    stages.train(config, "e", 0, tmp_path / "plans.json", tmp_path / "splits.json", tmp_path / "pre", tmp_path / "fold_0")
    state = torch.load(tmp_path / "fold_0" / "best.pt", map_location="cpu", weights_only=True)
    assert state["architecture"]["in_channels"] == 2
    stages.predict(config, "e", [str(tmp_path / "fold_0" / "best.pt")], [tmp_path / "pre" / "c4"], [tmp_path / "c4.nii.gz"])
    predicted, geometry = read_image(tmp_path / "c4.nii.gz", dtype=None)
    _, original = read_image(tmp_path / "t2_4.nii.gz")
    assert predicted.shape == original.shape_numpy and geometry.mismatch(original, 1e-4) is None
    assert json.loads((tmp_path / "splits.json").read_text(encoding="utf-8"))[0]["val"]
