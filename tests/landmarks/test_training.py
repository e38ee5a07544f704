"""Landmark and denoising training end to end on tiny synthetic cases (a few iterations)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config import validate_config
from pipeline.inference.ensemble import load_models
from pipeline.io.images import Geometry
from pipeline.tasks import train_fold
from pipeline.tasks.denoise.corrupt import corrupt
from pipeline.tasks.denoise.metrics import psnr, ssim
from pipeline.tasks.landmarks.configuration import stored_configuration
from pipeline.tasks.landmarks.geometry import index_to_world
from pipeline.tasks.landmarks.models import build_landmark_network
from pipeline.tasks.landmarks.predict import Locator
from pipeline.tasks.landmarks.sampling import LandmarkBatches, LandmarkCase, offsets_from_centre

torch.set_num_threads(1)
GEOMETRY = Geometry(size=(20, 18, 10), spacing=(1.0, 1.2, 2.0), origin=(5.0, -3.0, 10.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
POINTS = np.array([[4.0, 8.0, 9.0], [6.5, 10.0, 12.5]])  # numpy-order indices of two landmarks


def make_cases(root: Path, n: int = 3) -> pd.DataFrame:
    """Preprocessed cases with a bright blob at each landmark; returns their landmark table (mm)."""
    rows = []
    for i in range(n):
        folder = root / "pre" / f"c{i}"
        folder.mkdir(parents=True)
        grid = np.indices(GEOMETRY.shape_numpy).astype(np.float32)
        image = np.random.default_rng(i).normal(0, 0.1, GEOMETRY.shape_numpy).astype(np.float32)
        for p in POINTS + i * 0.5:
            image += np.exp(-sum((g - c) ** 2 for g, c in zip(grid, p)) / 2.0)
        np.save(folder / "image.npy", image[None])
        (folder / "properties.json").write_text(json.dumps({"case": f"c{i}", "resampled_geometry": GEOMETRY.to_dict(), "shape": list(GEOMETRY.shape_numpy)}))
        world = index_to_world(POINTS + i * 0.5, GEOMETRY)
        rows += [{"case": f"c{i}", "landmark": name, "x": w[0], "y": w[1], "z": w[2]} for name, w in zip(("A", "B"), world)]
    table = pd.DataFrame(rows)
    table.to_csv(root / "landmarks.tsv", sep="\t", index=False)
    return table


def config_for(root: Path, method: str) -> dict:
    return validate_config(
        {
            "dataset": {"labels": {0: "bg", 1: "fg"}, "manifest": "m.tsv", "landmarks": str(root / "landmarks.tsv")},
            "experiments": {
                "lm": {
                    "task": "landmarks",
                    "model": {"name": "unet", "channels": [4, 8]},
                    "landmarks": {"method": method},
                    "training": {"epochs": 2, "iterations_per_epoch": 2, "validate_every": 2, "optimizer": "adamw", "learning_rate": 1e-3},
                },
                "dae": {"task": "denoise", "model": {"name": "unet", "channels": [4, 8]}, "training": {"epochs": 1, "iterations_per_epoch": 2}},
            },
        }
    )


PLAN = {"dimensions": 3, "channels": ["image"], "patch_size": [8, 8, 8], "batch_size": 2}


def test_batches_carry_the_landmarks(tmp_path: Path) -> None:
    make_cases(tmp_path, 1)
    case = LandmarkCase(tmp_path / "pre" / "c0", index_to_world(POINTS, GEOMETRY))
    np.testing.assert_allclose(case.points, POINTS, atol=1e-9)
    batch = LandmarkBatches([case], [8, 8, 8], 2, "heatmap", 2.0, 1.0, seed=0)[3]
    assert batch["image"].shape == (2, 1, 8, 8, 8) and batch["target"].shape == (2, 2, 8, 8, 8)
    assert torch.equal(batch["target"], LandmarkBatches([case], [8, 8, 8], 2, "heatmap", 2.0, 1.0, seed=0)[3]["target"])
    offsets = offsets_from_centre(POINTS, [0, 4, 6], [8, 8, 8])
    np.testing.assert_allclose(offsets[0], (POINTS[0] - [3.5, 7.5, 9.5]) / 4)


@pytest.mark.parametrize("method", ["heatmap", "regression"])
def test_train_and_predict(tmp_path: Path, method: str) -> None:
    make_cases(tmp_path)
    config = config_for(tmp_path, method)
    fold = tmp_path / "models" / "lm" / "fold_0"
    log = train_fold(config, "lm", PLAN, {"train": ["c0", "c1"], "val": ["c2"]}, tmp_path / "pre", fold, torch.device("cpu"))
    assert list(log["epoch"]) == [1, 2] and np.isfinite(log["val_mre_mm"].iloc[-1])
    assert {p.name for p in fold.iterdir()} >= {"best.pt", "last.pt", "log.tsv"}
    models, state = load_models([fold / "best.pt"], build_landmark_network, "landmarks", torch.device("cpu"))
    arch = state["architecture"]
    assert arch["landmarks"] == ["A", "B"] and arch["method"] == method
    configuration = stored_configuration(state, arch["landmarks"])  # learned from c0 and c1: B - A is the same in both
    np.testing.assert_allclose(configuration.offsets[0, 1], index_to_world(POINTS, GEOMETRY)[1] - index_to_world(POINTS, GEOMETRY)[0], atol=1e-9)
    assert configuration.cases == 2
    table = Locator(models, arch, config["experiments"]["lm"]["landmarks"], configuration, 0.25).predict_case(tmp_path / "pre" / "c2")
    assert list(table.columns[:5]) == ["case", "landmark", "x", "y", "z"] and list(table["landmark"]) == ["A", "B"]
    assert np.isfinite(table[["x", "y", "z"]].to_numpy()).all()
    assert {"confidence", "flagged"} <= set(table.columns) and table["confidence"].between(0, 1).all()


def test_missing_landmark_of_a_training_case_is_named(tmp_path: Path) -> None:
    table = make_cases(tmp_path)
    table.iloc[:-1].to_csv(tmp_path / "landmarks.tsv", sep="\t", index=False)  # c2 loses B
    config = config_for(tmp_path, "heatmap")
    with pytest.raises(Exception, match=r"lacks landmark\(s\) \['B'\] of case 'c2'"):
        train_fold(config, "lm", PLAN, {"train": ["c0", "c1"], "val": ["c2"]}, tmp_path / "pre", tmp_path / "f")


def test_denoise_training_and_metrics(tmp_path: Path) -> None:
    make_cases(tmp_path)
    config = config_for(tmp_path, "heatmap")
    log = train_fold(config, "dae", PLAN, {"train": ["c0", "c1"], "val": ["c2"]}, tmp_path / "pre", tmp_path / "dae" / "fold_0", torch.device("cpu"))
    assert {"val_psnr", "val_ssim"} <= set(log.columns) and (tmp_path / "dae" / "fold_0" / "best.pt").exists()
    clean = np.load(tmp_path / "pre" / "c0" / "image.npy")
    noisy = corrupt(clean, config["experiments"]["dae"]["denoise"], np.random.default_rng(0))
    assert noisy.shape == clean.shape and 0.05 < np.mean(noisy == 0) < 0.5  # masked blocks
    assert psnr(clean, clean, 1.0) == float("inf") and ssim(clean, clean, 2.0) == pytest.approx(1.0, abs=1e-5)
    assert psnr(clean + 0.1, clean, 1.0) == pytest.approx(20.0)
    assert ssim(noisy, clean, 2.0) < 0.9
