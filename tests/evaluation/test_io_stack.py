"""Evaluation uses the workflow's I/O: dataset.json labels, TSV/JSON writing, image files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from pipeline.atomic import write_tsv
from pipeline.errors import CaseError, PipelineError
from pipeline.evaluation import evaluate_paths
from pipeline.evaluation.__main__ import main as evaluation_main
from pipeline.evaluation.files import labels_from_dataset_json, pair_files
from pipeline.io.dataset_json import label_map

MSD = {"name": "Liver", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "tumour"}, "training": []}
V2 = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2}, "file_ending": ".nii.gz", "numTraining": 2}
REPO_ROOT = Path(__file__).resolve().parents[2]
REGIONS = {"channel_names": {"0": "T2"}, "labels": {"background": 0, "whole": [1, 2], "core": 2}, "file_ending": ".nii.gz"}


def _write(path: Path, array: np.ndarray) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 1.0, 2.5)[: array.ndim])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _folders(tmp_path: Path, make_label_map, make_perturbed) -> tuple[Path, Path]:
    for i in range(2):
        ref = make_label_map((5, 8, 9), 3, seed=20 + i)
        _write(tmp_path / "ref" / f"liver_{i}.nii.gz", ref)
        _write(tmp_path / "pred" / f"liver_{i}.nii.gz", make_perturbed(ref, 3, seed=30 + i))
    return tmp_path / "ref", tmp_path / "pred"


def _json(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("info", [MSD, V2], ids=["msd", "nnunet_v2"])
def test_dataset_json_labels_are_parsed_as_the_workflow_parses_them(tmp_path, info):
    path = _json(tmp_path, "dataset.json", info)
    assert labels_from_dataset_json(path) == {int(k): v for k, v in label_map(info, path).items()}
    assert labels_from_dataset_json(path) == {0: "background", 1: "liver", 2: "tumour"}


@pytest.mark.parametrize("info", [MSD, V2], ids=["msd", "nnunet_v2"])
def test_both_label_styles_work_through_the_evaluation_command_line(tmp_path, make_label_map, make_perturbed, info):
    ref_dir, pred_dir = _folders(tmp_path, make_label_map, make_perturbed)
    out = tmp_path / "eval.tsv"
    assert evaluation_main([str(ref_dir), str(pred_dir), str(out), "--dataset-json", str(_json(tmp_path, "dataset.json", info))]) == 0
    table = pd.read_csv(out, sep="\t")
    assert table["class"].tolist() == ["liver", "tumour"] * 2 and table["case"].tolist() == ["liver_0"] * 2 + ["liver_1"] * 2


@pytest.mark.parametrize("info", [MSD, V2], ids=["msd", "nnunet_v2"])
def test_both_label_styles_work_through_python_m_pipeline_evaluate(tmp_path, make_label_map, make_perturbed, info):
    from pipeline.__main__ import main

    ref_dir, pred_dir = _folders(tmp_path, make_label_map, make_perturbed)
    out = tmp_path / "eval.tsv"
    argv = ["evaluate", "--reference", str(ref_dir), "--prediction", str(pred_dir), "--output", str(out),
            "--dataset-json", str(_json(tmp_path, "dataset.json", info)), "--nnunet-compatible"]  # fmt: skip
    assert main(argv) == 0
    assert pd.read_csv(out, sep="\t")["class"].tolist() == ["liver", "tumour"] * 2
    assert (tmp_path / "eval_nnunet.tsv").exists() and (tmp_path / "eval_summary.tsv").exists()


def test_bad_dataset_json_labels_fail_as_in_the_workflow(tmp_path, make_label_map, make_perturbed, capsys):
    from pipeline.__main__ import main

    with pytest.raises(PipelineError, match=r"\['whole'\] are regions"):
        labels_from_dataset_json(_json(tmp_path, "regions.json", REGIONS))
    assert labels_from_dataset_json(_json(tmp_path, "gaps.json", {"labels": {"background": 0, "liver": 2}})) == {0: "background", 2: "liver"}
    with pytest.raises(PipelineError, match=r"include 0 \(the background\)"):
        labels_from_dataset_json(_json(tmp_path, "nobg.json", {"labels": {"liver": 2}}))
    with pytest.raises(PipelineError, match="lacks"):
        labels_from_dataset_json(_json(tmp_path, "none.json", {"name": "x"}))
    with pytest.raises(PipelineError, match="does not exist"):
        labels_from_dataset_json(tmp_path / "missing.json")
    ref_dir, pred_dir = _folders(tmp_path, make_label_map, make_perturbed)
    argv = ["evaluate", "--reference", str(ref_dir), "--prediction", str(pred_dir), "--output", str(tmp_path / "e.tsv"),
            "--dataset-json", str(tmp_path / "regions.json")]  # fmt: skip
    assert main(argv) == 1
    assert "are regions" in capsys.readouterr().err and not (tmp_path / "e.tsv").exists()


def test_missing_values_are_written_as_the_workflow_writes_them(tmp_path):
    ref = np.zeros((4, 6, 6), np.uint8)
    ref[1:3, 1:4, 1:4] = 1
    _write(tmp_path / "r.nii.gz", ref)
    _write(tmp_path / "p.nii.gz", ref)
    out = tmp_path / "m.tsv"
    labels = {0: "background", 1: "liver", 2: "tumour"}  # no tumour anywhere: NaN with empty_both="nan"
    assert evaluation_main([str(tmp_path / "r.nii.gz"), str(tmp_path / "p.nii.gz"), str(out), "--set", "empty_both=nan",
                            *(f"--label={k}={v}" for k, v in labels.items() if k)]) == 0  # fmt: skip
    per_case = pd.read_csv(out, sep="\t")
    assert np.isnan(per_case.loc[1, "dice"]) and per_case.loc[0, "dice"] == 1.0
    write_tsv(tmp_path / "workflow.tsv", per_case)  # the workflow's writer, on the table read back
    assert out.read_text(encoding="utf-8") == (tmp_path / "workflow.tsv").read_text(encoding="utf-8")
    tumour = out.read_text(encoding="utf-8").splitlines()[2].split("\t")
    assert tumour[3] == "" and "nan" not in tumour  # an empty field, never the text "nan"
    summary = (tmp_path / "m_summary.tsv").read_text(encoding="utf-8")
    assert "\tnan" not in summary.lower()


def test_hidden_and_non_image_files_are_ignored_and_rgb_is_refused(tmp_path, make_label_map):
    ref = make_label_map((5, 8, 9), 3, seed=0)
    for folder in ("ref", "pred"):
        _write(tmp_path / folder / "c1.nrrd", ref)
    _write(tmp_path / "pred" / ".c2.nrrd.abc.tmp.nrrd", ref)  # a half-written atomic output
    (tmp_path / "pred" / "notes.txt").write_text("x", encoding="utf-8")
    assert [case for case, _, _ in pair_files(tmp_path / "ref", tmp_path / "pred")] == ["c1"]
    rgb = sitk.GetImageFromArray(np.zeros((8, 9, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.png"))
    _write(tmp_path / "gray.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(CaseError, match=r"case 'rgb', file .*rgb.png: 3 components per voxel"):
        evaluate_paths(tmp_path / "gray.png", tmp_path / "rgb.png", tmp_path / "m.tsv", labels={1: "x"})


def test_evaluation_imports_only_the_io_stack():
    code = "import sys, pipeline.evaluation.__main__; print(' '.join(m for m in sys.modules if m.startswith('pipeline')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout.split()
    allowed = ("pipeline.io", "pipeline.atomic", "pipeline.errors", "pipeline.evaluation")
    assert [m for m in loaded if m != "pipeline" and not m.startswith(allowed)] == []
