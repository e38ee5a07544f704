"""Input QC (pipeline.qc): flags against the training fingerprint, qc.tsv, and `python -m pipeline predict`.

The fingerprint is the pipeline's own (check_case on tiny NIfTI training cases written with
SimpleITK, then compute_fingerprint); each test case differs from the training cases in one way.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.atomic import write_json
from pipeline.config import validate_config
from pipeline.errors import SettingError
from pipeline.io.check import check_case, load_case
from pipeline.io.images import Geometry
from pipeline.preprocessing.fingerprint import compute_fingerprint
from pipeline.qc import inputs as qc
from pipeline.qc.table import COLUMNS, NO_FLAG, load_ranges, warning_line, write_qc_table
from tests.conftest import REPO, blob_case, write_volume

LABELS = {0: "bg", 1: "outer", 2: "inner"}
SPACING = (1.0, 1.0, 1.5)
CONFIG = {
    "dataset": {"manifest": "m", "labels": LABELS},
    "plan": {"target_spacing": [1.0, 1.0, 1.5], "patch_size": [8, 8, 8], "batch_size": 2},
    "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}}},
}


def _write_case(folder, case, shape=(12, 14, 16), seed=0, scale=1.0, **geometry):
    image, label = blob_case(shape=shape, seed=seed)
    geometry.setdefault("spacing", SPACING)
    image_path = write_volume(folder / "images" / f"{case}.nii.gz", image * scale, **geometry)
    label_path = write_volume(folder / "labels" / f"{case}.nii.gz", label, **geometry)
    return str(image_path), str(label_path)


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """Three tiny training cases: their check results and the fingerprint made from them."""
    root = tmp_path_factory.mktemp("train")
    checks = [check_case(f"t{i}", [_write_case(root, f"t{i}", seed=i)[0]], _write_case(root, f"t{i}", seed=i)[1], LABELS, 3, 1e-3) for i in range(3)]
    return compute_fingerprint(checks, LABELS, ["image"]), checks


@pytest.fixture(scope="module")
def ranges(training):
    return qc.training_ranges(*training)


def _flags(tmp_path, ranges, case="x", channels=1, **kwargs):
    """The flags of a case written with ``kwargs``, its label's foreground compared."""
    image_path, label_path = _write_case(tmp_path, case, **kwargs)
    image, label, geometry = load_case(case, [image_path] * channels, label_path, 3, 1e-3, sorted(LABELS))
    return qc.check_case(case, image, geometry, ranges, foreground=label > 0, model_channels=1)


def test_the_ranges_are_the_training_cases(ranges):
    assert ranges.cases == 3 and ranges.channels == ("image",) and ranges.orientations == ("LPS",)
    assert ranges.spacing == ((1.0, 1.0), (1.0, 1.0), (1.5, 1.5))
    assert ranges.field_of_view == ((16.0, 16.0), (14.0, 14.0), (18.0, 18.0))  # ITK order: 16 x voxels of 1 mm ...
    assert ranges.per_case_intensity
    low, high = ranges.intensity["image"]["intensity_p50"]
    assert 60 < low <= high < 130


def test_a_case_like_the_training_cases_gets_no_flag(tmp_path, ranges):
    assert _flags(tmp_path, ranges, seed=7) == []


def test_another_spacing_gets_exactly_the_spacing_flag(tmp_path, ranges):
    # 9 slices of 2.5 mm: the field of view (22.5 mm, training 18 mm) stays within the tolerance.
    flags = _flags(tmp_path, ranges, "thick", shape=(9, 14, 16), seed=7, spacing=(1.0, 1.0, 2.5))
    assert [(f.name, f.axis, f.value, f.low, f.high) for f in flags] == [("spacing", 2, 2.5, 1.5, 1.5)]
    assert flags[0].message == "case thick: spacing axis 2 is 2.5 mm, training cases had 1.5-1.5 mm (flagged outside 1-2.25 mm)"


def test_a_field_of_view_far_from_the_training_ones_is_flagged(tmp_path, ranges):
    flags = _flags(tmp_path, ranges, "long", shape=(40, 14, 16), seed=7)
    assert [(f.name, f.axis, f.value) for f in flags] == [("field_of_view", 2, 60.0)]


def test_intensities_scaled_by_100_get_intensity_flags(tmp_path, ranges):
    flags = _flags(tmp_path, ranges, "bright", seed=7, scale=100.0)
    assert {f.name for f in flags} == {"intensity_p01", "intensity_p50", "intensity_p99"}
    assert all(f.channel == "image" and f.value > 100 * f.low * 0.9 for f in flags)
    assert "case bright: channel image intensity percentile 50 (label foreground) is" in flags[1].message


def test_a_flipped_direction_gets_the_orientation_flag(tmp_path, ranges):
    # The pipeline keeps the voxel axes (it does not reorient before predicting): the network
    # would see this case's x axis reversed.
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    flags = _flags(tmp_path, ranges, "flipped", seed=7, direction=flipped)
    assert [(f.name, f.value, f.low) for f in flags] == [("orientation", "RPS", "LPS")]
    assert flags[0].message.startswith("case flipped: orientation is RPS, training cases had LPS")
    assert qc.orientation_code((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)) == "ALS"  # axes permuted (as SimpleITK names it)


def test_a_wrong_channel_count_gets_the_channels_flag(tmp_path, ranges):
    flags = _flags(tmp_path, ranges, "two", seed=7, channels=2)
    assert [(f.name, f.value, f.low, f.high) for f in flags] == [("channels", 2, 1, 1)]
    assert flags[0].message == "case two: 2 channel(s), the model was trained on 1 (image)"


def test_the_fingerprint_alone_gives_pooled_intensity_ranges_and_no_orientation(tmp_path, training):
    alone = qc.training_ranges(training[0])
    assert not alone.per_case_intensity and alone.orientations == ()
    assert _flags(tmp_path, alone, seed=7) == []
    assert {f.name for f in _flags(tmp_path, alone, "bright", seed=7, scale=100.0)} >= {"intensity_p50", "intensity_p99"}
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert _flags(tmp_path, alone, "flipped", seed=7, direction=flipped) == []


def test_a_fingerprint_without_its_entries_is_a_setting_error(training):
    broken = {k: v for k, v in training[0].items() if k != "spacings"}
    with pytest.raises(SettingError, match="the fingerprint has no 'spacings' entry"):
        qc.training_ranges(broken)


def test_the_qc_table_lists_every_case_and_merges(tmp_path, ranges):
    thick = _flags(tmp_path, ranges, "thick", shape=(9, 14, 16), seed=7, spacing=(1.0, 1.0, 2.5))
    path = tmp_path / "out" / "qc.tsv"
    write_qc_table(path, {"good": [], "thick": thick})
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert list(table.columns) == COLUMNS
    assert table.to_dict("records")[0] == {c: "" for c in COLUMNS} | {"case": "good", "message": NO_FLAG}
    assert table.iloc[1][["case", "flag", "axis", "value", "train_low", "train_high"]].tolist() == ["thick", "spacing", "2", "2.5", "1.5", "1.5"]
    write_qc_table(path, {"thick": [], "new": []}, merge=True)  # rows of other cases stay, these are replaced
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert table["case"].tolist() == ["good", "thick", "new"] and set(table["flag"]) == {""}
    assert warning_line("thick", thick) == "warning: " + thick[0].message


def _model_folder(root, training):
    """results/{plans,cases,models} as the workflow writes them, with an untrained one-fold model."""
    from pipeline.models import build_network
    from pipeline.preprocessing.plan import make_plan
    from pipeline.tasks.segmentation.train import architecture
    from pipeline.training.checkpoint import save_checkpoint

    fingerprint, checks = training
    write_json(root / "results" / "plans" / "fingerprint.json", fingerprint)
    for check in checks:
        write_json(root / "results" / "cases" / check["case"] / "check.json", check)
    config = validate_config(CONFIG)
    plan, experiment = make_plan(fingerprint, config), config["experiments"]["e"]
    arch = architecture(experiment, plan)
    torch.manual_seed(0)
    model = root / "results" / "models" / "e"
    save_checkpoint(model / "fold_0" / "best.pt", {"model": build_network(arch).state_dict(), "architecture": arch, "plan": plan, "experiment": experiment})
    return model


def test_predict_writes_qc_tsv_and_warns_on_a_changed_spacing(tmp_path, training):
    model = _model_folder(tmp_path, training)
    for case, kwargs in {"good": {}, "thick": {"shape": (9, 14, 16), "spacing": (1.0, 1.0, 2.5)}}.items():
        image, _ = blob_case(shape=kwargs.get("shape", (12, 14, 16)), seed=7)
        write_volume(tmp_path / "in" / f"{case}.nii.gz", image, spacing=kwargs.get("spacing", SPACING))
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "predict",
        "--threads",
        "1",
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "good.nii.gz").is_file() and (tmp_path / "out" / "thick.nii.gz").is_file()
    table = pd.read_csv(tmp_path / "out" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert set(table["case"]) == {"good", "thick"}
    thick = table[table["case"] == "thick"]
    assert thick[["flag", "axis", "value"]].values.tolist()[0] == ["spacing", "2", "2.5"]
    assert not set(table[table["case"] == "good"]["flag"]) & {"spacing", "field_of_view", "orientation", "channels"}
    assert "warning: case thick: spacing axis 2 is 2.5 mm, training cases had 1.5-1.5 mm" in result.stderr
    assert load_ranges(tmp_path / "results" / "plans" / "fingerprint.json").orientations == ("LPS",)  # the check files were found


def test_predict_with_a_missing_fingerprint_fails_before_predicting(tmp_path, training):
    from pipeline.tasks.segmentation.new_images import predict_folder

    model = _model_folder(tmp_path, training)
    write_volume(tmp_path / "in" / "a.nii.gz", blob_case(seed=7)[0], spacing=SPACING)
    with pytest.raises(SettingError, match=r"fingerprint .*nowhere\.json does not exist"):
        predict_folder(model, tmp_path / "in", tmp_path / "out", fingerprint=tmp_path / "nowhere.json")
    assert not (tmp_path / "out" / "a.nii.gz").exists()


def test_foreground_percentiles_ignore_voxels_outside_the_mask(ranges):
    image = np.zeros((1, 16, 16, 16), dtype=np.float32)
    image[0, 4:12, 4:12, 4:12] = 70.0
    image[0, 6:10, 6:10, 6:10] = 120.0
    geometry = Geometry((16, 16, 16), (1.0, 1.0, 1.5), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    names = {f.name for f in qc.check_case("cube", image, geometry, ranges)}  # the nonzero voxels: like the labels' foreground
    assert not names & set(qc.PERCENTILES)
