"""evaluate_paths: pairing, reading with spacing, atomic outputs and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from pipeline.evaluation import Conventions, evaluate_case, evaluate_paths
from pipeline.evaluation.__main__ import main

LABELS = {0: "background", 1: "liver", 2: "tumour"}
SPACING_XYZ = (0.8, 1.0, 2.5)  # ITK order; numpy order is reversed


def _write(path: Path, array: np.ndarray, spacing_xyz=SPACING_XYZ) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz[: array.ndim])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _dataset(tmp_path: Path, make_label_map, make_perturbed, n: int = 3) -> tuple[Path, Path]:
    for i in range(n):
        ref = make_label_map((6, 10, 12), 3, seed=i)
        _write(tmp_path / "ref" / f"case_{i:03d}.nii.gz", ref)
        _write(tmp_path / "pred" / f"case_{i:03d}.nii.gz", make_perturbed(ref, 3, seed=10 + i))
    (tmp_path / "pred" / "plans.json").write_text("{}")  # non-image files are ignored
    return tmp_path / "ref", tmp_path / "pred"


def test_folders_are_paired_read_with_spacing_and_written(tmp_path, make_label_map, make_perturbed):
    ref_dir, pred_dir = _dataset(tmp_path, make_label_map, make_perturbed)
    out = tmp_path / "eval" / "metrics.tsv"
    per_case, summary = evaluate_paths(ref_dir, pred_dir, out, labels=LABELS, nnunet_compatible=True)
    assert sorted(per_case["case"].unique()) == ["case_000", "case_001", "case_002"]
    assert len(per_case) == 6 and len(summary) == 3
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(ref_dir / "case_001.nii.gz")))
    pred = sitk.GetArrayFromImage(sitk.ReadImage(str(pred_dir / "case_001.nii.gz")))
    direct = evaluate_case(ref, pred, SPACING_XYZ[::-1], LABELS, case_id="case_001")
    got = per_case[per_case["case"] == "case_001"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, direct, check_dtype=False)
    assert pd.read_csv(out, sep="\t")["hd"].to_numpy() == pytest.approx(per_case["hd"].to_numpy())
    assert len(pd.read_csv(tmp_path / "eval" / "metrics_summary.tsv", sep="\t")) == 3
    assert json.loads((tmp_path / "eval" / "metrics_conventions.json").read_text(encoding="utf-8")) == Conventions().as_dict()
    assert (tmp_path / "eval" / "metrics_nnunet.tsv").exists()
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.endswith(".tmp")]


def test_single_files_and_dataset_json(tmp_path, make_label_map):
    ref = make_label_map((20, 16), 3, seed=1)
    _write(tmp_path / "a.png", ref)  # 2D, png
    _write(tmp_path / "b.png", ref)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1, "tumour": 2}}))
    per_case, _ = evaluate_paths(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "m.tsv",
                                 dataset_json=tmp_path / "dataset.json")  # fmt: skip
    assert per_case["case"].tolist() == ["b", "b"] and per_case["class"].tolist() == ["liver", "tumour"]
    assert np.allclose(per_case["dice"], 1.0)


def test_errors_name_case_file_and_values(tmp_path, make_label_map):
    ref = make_label_map((6, 8, 8), 3, seed=0)
    _write(tmp_path / "ref" / "c1.nii.gz", ref)
    _write(tmp_path / "ref" / "c2.nii.gz", ref)
    _write(tmp_path / "pred" / "c1.nii.gz", ref)
    _write(tmp_path / "pred" / "c3.nii.gz", ref)
    with pytest.raises(ValueError, match=r"unpaired.*'c2'.*'c3'"):
        evaluate_paths(tmp_path / "ref", tmp_path / "pred", tmp_path / "m.tsv", labels=LABELS)
    _write(tmp_path / "s_ref.nii.gz", ref)
    _write(tmp_path / "s_shape.nii.gz", ref[:, :, :7])
    with pytest.raises(ValueError, match=r"case 's_shape'.*shape \(6, 8, 7\).*\(6, 8, 8\)"):
        evaluate_paths(tmp_path / "s_ref.nii.gz", tmp_path / "s_shape.nii.gz", tmp_path / "m.tsv", labels=LABELS)
    _write(tmp_path / "s_sp.nii.gz", ref, spacing_xyz=(1.0, 1.0, 2.5))
    with pytest.raises(ValueError, match=r"case 's_sp'.*spacing"):
        evaluate_paths(tmp_path / "s_ref.nii.gz", tmp_path / "s_sp.nii.gz", tmp_path / "m.tsv", labels=LABELS)
    _write(tmp_path / "s_val.nii.gz", np.where(ref == 2, 9, ref).astype(np.uint8))
    with pytest.raises(ValueError, match=r"case 's_val'.*value 9.*s_val.nii.gz"):
        evaluate_paths(tmp_path / "s_ref.nii.gz", tmp_path / "s_val.nii.gz", tmp_path / "m.tsv", labels=LABELS)
    _write(tmp_path / "s_float.nii.gz", ref.astype(np.float32) + 0.25)
    with pytest.raises(ValueError, match=r"non-integer value 0.25"):
        evaluate_paths(tmp_path / "s_ref.nii.gz", tmp_path / "s_float.nii.gz", tmp_path / "m.tsv", labels=LABELS)
    with pytest.raises(FileNotFoundError, match="nope"):
        evaluate_paths(tmp_path / "nope", tmp_path / "pred", tmp_path / "m.tsv", labels=LABELS)
    with pytest.raises(ValueError, match="both be files or both be folders"):
        evaluate_paths(tmp_path / "s_ref.nii.gz", tmp_path / "pred", tmp_path / "m.tsv", labels=LABELS)
    with pytest.raises(ValueError, match="dataset_json"):
        evaluate_paths(tmp_path / "ref", tmp_path / "pred", tmp_path / "m.tsv")
    assert not (tmp_path / "m.tsv").exists()


def test_command_line(tmp_path, make_label_map, make_perturbed):
    ref_dir, pred_dir = _dataset(tmp_path, make_label_map, make_perturbed, n=2)
    out = tmp_path / "cli.tsv"
    argv = [str(ref_dir), str(pred_dir), str(out), "--label", "1=liver", "--label", "2=tumour",
            "--set", "empty_both=nan", "--set", "surface_tolerance_mm=2"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "cli_conventions.json").read_text(encoding="utf-8"))["empty_both"] == "nan"
    assert pd.read_csv(out, sep="\t")["class"].tolist() == ["liver", "tumour"] * 2
