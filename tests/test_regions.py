"""Region-based training for nested structures (BraTS: whole tumour ⊃ tumour core ⊃ enhancing),
from the config check through a real Snakemake run that writes painted label maps and scores
per region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F
import yaml
from monai.losses import DiceLoss

from pipeline.config import validate_config
from pipeline.errors import ConfigError
from pipeline.io.regions import membership, paint_values, region_masks
from pipeline.losses import build_loss
from tests.test_case_outcomes import snakemake

#: BraTS 2021's values: 1 necrosis, 2 oedema, 3 enhancing tumour.
LABELS = {0: "background", 1: "necrosis", 2: "oedema", 3: "enhancing"}
REGIONS = [{"name": "whole", "labels": [1, 2, 3]}, {"name": "core", "labels": [1, 3]}, {"name": "enhancing", "labels": [3]}]


def _config(regions, labels=LABELS, **experiment):
    return {"dataset": {"manifest": "m", "labels": labels, "regions": regions}, "experiments": {"e": experiment}}


def test_regions_paint_with_the_value_no_later_region_holds() -> None:
    assert paint_values(REGIONS) == [2, 1, 3]
    member = membership(REGIONS, LABELS)
    assert member.tolist() == [[False] * 3, [True, True, False], [True, False, False], [True, True, True]]
    masks = region_masks(np.array([0, 1, 2, 3]), member)
    assert masks.shape == (3, 4) and masks[0].tolist() == [False, True, True, True]


@pytest.mark.parametrize(
    ("regions", "labels", "message"),
    [
        ([{"name": "a", "labels": [1]}, {"name": "a", "labels": [2]}], LABELS, r"region name\(s\) \['a'\] are given twice"),
        ([{"name": "a", "labels": [1, 7]}], LABELS, r"dataset.regions\[0\] \(a\): label value\(s\) \[7\] are not foreground labels"),
        ([{"name": "wt", "labels": [1, 2, 3]}, {"name": "et", "labels": [3]}], LABELS, r"regions\[0\] \(wt\): holds 2 value\(s\) \[1, 2\] that no later"),
        (REGIONS, {**LABELS, 4: "ignore"}, "cannot be combined with an 'ignore' label"),
    ],
)
def test_bad_regions_are_refused_naming_the_region(regions, labels, message) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(_config(regions, labels))


def test_class_weights_do_not_apply_to_regions() -> None:
    with pytest.raises(ConfigError, match=r"experiments.e.class_weights: \[1, 1, 1, 1\] do not apply to region training"):
        validate_config(_config(REGIONS, class_weights=[1, 1, 1, 1]))


@pytest.mark.parametrize("batch_dice", [False, True])
def test_region_loss_is_sigmoid_dice_plus_bce_on_the_region_masks(batch_dice) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, 7, requires_grad=True)
    target = torch.randint(0, 4, (2, 1, 5, 6, 7))
    member = membership(REGIONS, LABELS)
    loss = build_loss("dice_ce", regions=member, batch_dice=batch_dice)(logits, target)
    multi = torch.as_tensor(member, dtype=torch.float32)[target[:, 0]].movedim(-1, 1)
    expected = DiceLoss(sigmoid=True, batch=batch_dice)(logits, multi) + F.binary_cross_entropy_with_logits(logits, multi)
    assert torch.allclose(loss, expected, atol=1e-6)
    for name in ("dice", "ce", "focal", "dice_focal"):
        assert torch.isfinite(build_loss(name, regions=member)([logits, logits[:, :, ::2, ::2, ::2]], target))


def write_case(folder: Path, case: str, seed: int) -> None:
    """Oedema (2) around necrosis (1) around enhancing tumour (3), each brighter; 16^3 voxels."""
    rng = np.random.default_rng(seed)
    label = np.zeros((16, 16, 16), np.uint8)
    z, y, x = rng.integers(1, 4, size=3)
    label[z : z + 12, y : y + 12, x : x + 12] = 2
    label[z + 2 : z + 10, y + 2 : y + 10, x + 2 : x + 10] = 1
    label[z + 3 : z + 9, y + 3 : y + 9, x + 3 : x + 9] = 3
    image = (np.choose(label, [0.0, 3.0, 1.5, 4.5]) + rng.normal(scale=0.3, size=label.shape)).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(image), str(folder / f"{case}_img.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(label), str(folder / f"{case}_seg.nii.gz"))


def test_a_region_run_paints_and_scores_per_region(tmp_path: Path) -> None:
    rows = ["case\tt1\tlabel\tsplit"]
    for i, split in enumerate(["train"] * 4 + ["test"] * 2):
        write_case(tmp_path, f"c{i}", i)
        rows.append(f"c{i}\tc{i}_img.nii.gz\tc{i}_seg.nii.gz\t{split}")
    (tmp_path / "cases.tsv").write_text("\n".join(rows) + "\n")
    config = {
        "dataset": {"name": "nested", "manifest": "cases.tsv", "channels": [{"name": "t1", "modality": "mri"}], "labels": LABELS, "regions": REGIONS},
        "plan": {"folds": 2, "patch_size": [16, 16, 16], "batch_size": 2},
        "experiments": {
            "tiny": {
                "model": {"name": "unet", "channels": [8, 16]},
                "training": {"folds": [0], "epochs": 10, "iterations_per_epoch": 20, "learning_rate": 0.01},
                "inference": {"mirror": False, "save_probabilities": True},
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    log = (tmp_path / "results/models/tiny/fold_0/log.tsv").read_text().splitlines()[0]
    assert "val_dice_whole" in log and "val_dice_enhancing" in log
    for case in ("c4", "c5"):
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"results/predictions/tiny/{case}.nii.gz")))
        assert set(np.unique(predicted).tolist()) == {0, 1, 2, 3}  # every region painted with its own value
        probabilities = np.load(tmp_path / f"results/predictions/tiny/{case}.npz")["probabilities"]
        assert probabilities.shape == (3, 16, 16, 16) and probabilities.min() >= 0 and probabilities.max() <= 1
    per_case = pd.read_csv(tmp_path / "results/evaluation/tiny/per_case.tsv", sep="\t", dtype={"case": str})
    assert per_case.groupby("case")["class"].apply(list).tolist() == [["whole", "core", "enhancing"]] * 2
    assert per_case["label"].tolist() == [2, 1, 3] * 2
    assert per_case["dice"].min() > 0.8
    assert (tmp_path / "reports/tiny.html").exists()
