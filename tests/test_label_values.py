"""Label values with gaps, as users have them (TotalSegmentator's 1..117, BraTS' 0, 1, 2, 4):
declared as is, classes 0..K-1 inside, predictions written back with the declared values,
in a real Snakemake run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from pipeline.errors import CaseError, ConfigError
from pipeline.io.check import check_case
from pipeline.io.label_values import declared_values, to_label_index, to_label_values
from tests.test_case_outcomes import snakemake

VALUES = {0: "background", 2: "shell", 7: "core"}
#: With the ignore label (nnU-Net's convention): the slab it covers is unannotated.
WITH_IGNORE = {**VALUES, 9: "ignore"}


def write_case(folder: Path, case: str, seed: int, values: tuple[int, int] = (2, 7), unannotated: int | None = None) -> None:
    """A bright shell (value 2 in the label) around a brighter core (value 7); 16^3 voxels, 1 mm;
    the label's first four slices get the value ``unannotated`` when given."""
    rng = np.random.default_rng(seed)
    label = np.zeros((16, 16, 16), np.uint8)
    lo = rng.integers(2, 5, size=3)
    label[lo[0] : lo[0] + 10, lo[1] : lo[1] + 10, lo[2] : lo[2] + 10] = values[0]
    label[lo[0] + 3 : lo[0] + 7, lo[1] + 3 : lo[1] + 7, lo[2] + 3 : lo[2] + 7] = values[1]
    image = (np.select([label == values[0], label == values[1]], [2.0, 4.0], 0.0) + rng.normal(scale=0.3, size=label.shape)).astype(np.float32)
    if unannotated is not None:
        label[:4] = unannotated
    sitk.WriteImage(sitk.GetImageFromArray(image), str(folder / f"{case}_img.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(label), str(folder / f"{case}_seg.nii.gz"))


def test_indices_and_values_round_trip() -> None:
    values = declared_values({"0": "bg", "117": "x", "2": "a"})
    assert values.tolist() == [0, 2, 117]
    label = np.array([[0, 2], [117, 2]], np.int16)
    index = to_label_index(label, values, "label", "c1")
    assert index.tolist() == [[0, 1], [2, 1]] and index.dtype == np.uint8
    assert (to_label_values(index, values) == label).all()
    assert to_label_values(index, [0, 1, 300]).dtype == np.uint16


def test_the_check_counts_by_class_and_names_undeclared_values(tmp_path: Path) -> None:
    write_case(tmp_path, "c1", 0)
    found = check_case("c1", [str(tmp_path / "c1_img.nii.gz")], str(tmp_path / "c1_seg.nii.gz"), VALUES, 3, 1e-3)
    assert len(found["class_counts"]) == 3 and found["class_counts"][1] == 1000 - 64 and found["class_counts"][2] == 64
    write_case(tmp_path, "c2", 0, values=(2, 3))
    with pytest.raises(CaseError, match=r"label value\(s\) \[3\] are not declared; dataset.labels declares \[0, 2, 7\]") as info:
        check_case("c2", [str(tmp_path / "c2_img.nii.gz")], str(tmp_path / "c2_seg.nii.gz"), VALUES, 3, 1e-3)
    assert info.value.case == "c2" and "c2_seg.nii.gz" in str(info.value)


def test_unannotated_voxels_are_not_scored() -> None:
    """A prediction that differs from the reference only where the reference is 'ignore' scores 1."""
    from pipeline.evaluation import Conventions, evaluate_case

    reference = np.zeros((8, 8, 8), np.uint8)
    reference[2:6, 2:6, 2:6] = 2
    reference[:, :, 6:] = 9
    prediction = np.where(reference == 9, 7, reference)  # anything at all where nothing is annotated
    table = evaluate_case(reference, prediction, (1.0, 1.0, 1.0), WITH_IGNORE, Conventions(), case_id="c1")
    assert table["class"].tolist() == ["shell", "core"]
    assert table.set_index("class").loc["shell", "dice"] == 1.0 and table.set_index("class").loc["core", "n_ref"] == 0
    assert table.set_index("class").loc["core", "n_pred"] == 0


@pytest.mark.parametrize("labels", [{0: "bg", 9: "ignore", 10: "a"}, {0: "bg", 9: "ignore"}])
def test_the_ignore_label_must_be_the_highest_value(labels) -> None:
    from pipeline.config import validate_config

    config = {"dataset": {"manifest": "m", "labels": labels}, "experiments": {"e": {}}}
    with pytest.raises(ConfigError, match="the class 'ignore' .* has value 9; expected the highest value"):
        validate_config(config)


def test_a_run_writes_and_scores_the_declared_values(tmp_path: Path) -> None:
    """Values 0/2/7 with gaps and an ignore label 9 on the first slices of every label."""
    rows = ["case\tt1\tlabel\tsplit"]
    for i, split in enumerate(["train"] * 4 + ["test"] * 2):
        write_case(tmp_path, f"c{i}", i, unannotated=9)
        rows.append(f"c{i}\tc{i}_img.nii.gz\tc{i}_seg.nii.gz\t{split}")
    (tmp_path / "cases.tsv").write_text("\n".join(rows) + "\n")
    config = {
        "dataset": {"name": "gaps", "manifest": "cases.tsv", "channels": [{"name": "t1", "modality": "mri"}], "labels": WITH_IGNORE},
        "plan": {"folds": 2, "patch_size": [16, 16, 16], "batch_size": 2},
        "experiments": {
            "tiny": {
                "model": {"name": "unet", "channels": [8, 16]},
                "training": {"folds": [0], "epochs": 10, "iterations_per_epoch": 20, "learning_rate": 0.01},
                "inference": {"mirror": False},
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    for case in ("c4", "c5"):
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"results/predictions/tiny/{case}.nii.gz")))
        assert set(np.unique(predicted).tolist()) <= {0, 2, 7}  # never 'ignore'
        assert 7 in predicted  # the core is found and written with its declared value
    per_case = pd.read_csv(tmp_path / "results/evaluation/tiny/per_case.tsv", sep="\t", dtype={"case": str})
    assert sorted(per_case["label"].unique().tolist()) == [2, 7]
    assert dict(zip(per_case["label"], per_case["class"])) == {2: "shell", 7: "core"}
    assert per_case["dice"].min() > 0.5  # scored against the files' own values
