"""`python -m pipeline predict`: which inputs are cases, all checked before a model is loaded.

Real files (NIfTI, NRRD, PNG, DICOM series written with SimpleITK) and a tiny trained model
folder; each bad input fails with a message naming the case or file, what was found and what
was expected, and leaves no prediction behind.
"""

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline.__main__ import main
from pipeline.config import validate_config
from pipeline.errors import CaseError
from pipeline.io.cases import ManifestError
from pipeline.io.images import read_image
from pipeline.io.inputs import check_inputs, check_output_folder, collect_inputs, output_suffix
from pipeline.models import build_network
from pipeline.preprocessing.plan import make_plan
from pipeline.tasks.segmentation import new_images
from pipeline.tasks.segmentation.new_images import predict_folder
from pipeline.tasks.segmentation.train import architecture
from pipeline.training.checkpoint import save_checkpoint
from tests.conftest import REPO, blob_case, write_volume
from tests.io.test_formats import write_dicom_series

CONFIG = {
    "dataset": {"manifest": "m", "labels": {0: "bg", 1: "outer", 2: "inner"}},
    "plan": {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [8, 8, 8], "batch_size": 2},
    "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}}},
}
EYE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A one-channel 3D model folder with one fold, as training writes it."""
    root = tmp_path_factory.mktemp("model")
    config = validate_config(CONFIG)
    fingerprint = {"spacings": [[1.0, 1.0, 1.0]], "shapes": [[12, 14, 16]], "intensity": {"image": {}}, "class_totals": {"bg": 10, "outer": 5, "inner": 1}}
    plan = make_plan(fingerprint, config)
    experiment = config["experiments"]["e"]
    arch = architecture(experiment, plan)
    torch.manual_seed(0)
    save_checkpoint(root / "fold_0" / "best.pt", {"model": build_network(arch).state_dict(), "architecture": arch, "plan": plan, "experiment": experiment})
    return root


@pytest.fixture()
def no_model_loading(monkeypatch):
    """Fail the test if predict_folder gets as far as loading the models."""

    def refuse(*args, **kwargs):
        raise AssertionError("the models were loaded before the inputs were checked")

    monkeypatch.setattr(new_images, "Predictor", refuse)


def _scan(path, shape=(7, 9, 8), seed=0, **geometry):
    image, _ = blob_case(shape=shape, seed=seed)
    return write_volume(path, image, **geometry)


def _dicom(folder, shape=(6, 10, 9), spacing=(0.9, 1.1, 2.0), origin=(3.0, -2.0, 5.0)):
    image, _ = blob_case(shape=shape)
    write_dicom_series(folder, (image * 10).astype(np.int16), spacing=spacing, origin=origin, direction=EYE)
    return folder


# DICOM series ---------------------------------------------------------------------------


def test_a_dicom_series_folder_is_one_case_named_after_the_folder(tmp_path, model_folder):
    series = _dicom(tmp_path / "in" / "patient_07")
    assert collect_inputs(series, 1) == {"patient_07": [series]}
    assert collect_inputs(tmp_path / "in", 1) == {"patient_07": [series]}  # a folder of series folders
    written = predict_folder(model_folder, series, tmp_path / "out")
    assert [p.name for p in written] == ["patient_07.nii.gz"]
    labels, geometry = read_image(written[0])
    _, expected = read_image(series)
    assert geometry.mismatch(expected, 1e-4) is None and labels.shape == (6, 10, 9)
    assert output_suffix(series) == ".nii.gz"


def test_a_folder_with_two_dicom_series_fails_before_the_models_load(tmp_path, model_folder, no_model_loading):
    import locale

    import SimpleITK as sitk

    series = _dicom(tmp_path / "two")
    _dicom(tmp_path / "other", shape=(4, 10, 9))
    saved = locale.setlocale(locale.LC_ALL)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index, f in enumerate(sorted((tmp_path / "other").iterdir())):  # the same slices as a second series
        slice_ = sitk.ReadImage(str(f))
        slice_.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.43")
        slice_.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.43.{index + 1}")
        writer.SetFileName(str(series / f"b_{f.name}"))
        writer.Execute(slice_)
    locale.setlocale(locale.LC_ALL, saved)
    with pytest.raises(CaseError, match=r"case 'two', file .*two: folder holds 2 DICOM series, expected exactly one \(one case per folder\)"):
        predict_folder(model_folder, series, tmp_path / "out")


def test_a_single_dicom_file_or_a_series_mixed_with_images_is_refused(tmp_path):
    series = _dicom(tmp_path / "s")
    with pytest.raises(ManifestError, match=r"slice_000\.dcm is a single DICOM file; give the folder that holds its series"):
        collect_inputs(series / "slice_000.dcm", 1)
    _scan(series / "extra.nii.gz")
    with pytest.raises(ManifestError, match=r"holds a DICOM series and image file\(s\) \['extra\.nii\.gz'\]"):
        collect_inputs(series, 1)


# Channels -------------------------------------------------------------------------------


def test_two_channels_given_to_a_one_channel_model_are_an_error_not_two_cases(tmp_path, model_folder, no_model_loading):
    for name in ("a_0000.nii.gz", "a_0001.nii.gz"):
        _scan(tmp_path / "in" / name)
    with pytest.raises(ManifestError, match=r"case 'a': found channel\(s\) \[0, 1\] \(a_0000\.nii\.gz, a_0001\.nii\.gz\), the model needs channels \[0\]"):
        predict_folder(model_folder, tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_names_the_case_and_the_channels_found(tmp_path, model_folder):
    for name in ("a_0000.nii.gz", "a_0001.nii.gz"):
        _scan(tmp_path / "in" / name)
    command = [sys.executable, "-m", "pipeline", "predict", "--model", str(model_folder), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 1
    assert "error: case 'a': found channel(s) [0, 1] (a_0000.nii.gz, a_0001.nii.gz), the model needs channels [0]" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_one_channel_names_without_channel_suffix_keep_their_whole_name(tmp_path):
    for name in ("patient_0012.nii.gz", "patient_0013.nrrd", "b_0000.nii.gz"):
        _scan(tmp_path / "mixed" / name)
    assert list(collect_inputs(tmp_path / "mixed" / "patient_0012.nii.gz", 1)) == ["patient_0012"]
    assert list(collect_inputs([tmp_path / "mixed" / "patient_0012.nii.gz", tmp_path / "mixed" / "patient_0013.nrrd"], 1)) == ["patient_0012", "patient_0013"]
    # With nnU-Net naming in use (b_0000), patient_0012 reads as channel 12 of case 'patient'.
    with pytest.raises(ManifestError, match=r"case 'patient': found channel\(s\) \[12, 13\] .* the model needs channels \[0\]"):
        collect_inputs(tmp_path / "mixed", 1)


def test_multichannel_cases_need_every_channel_on_one_grid(tmp_path):
    _scan(tmp_path / "a_0000.nii.gz", spacing=(1.0, 1.0, 2.0))
    _scan(tmp_path / "a_0001.nii.gz", spacing=(1.0, 1.0, 2.5))
    _scan(tmp_path / "b_0000.nii.gz")
    _scan(tmp_path / "b_0001.nii.gz", shape=(7, 9, 9))
    cases = collect_inputs(tmp_path, 2)
    with pytest.raises(
        CaseError,
        match=r"case 'a', file .*a_0001\.nii\.gz: spacing \(1\.0, 1\.0, 2\.5\) mm differs from \(1\.0, 1\.0, 2\.0\) mm .* of the first channel a_0000\.nii\.gz",
    ):
        check_inputs({"a": cases["a"]}, 3)
    with pytest.raises(CaseError, match=r"case 'b', file .*b_0001\.nii\.gz: size \(9, 9, 7\) differs from \(8, 9, 7\) voxels"):
        check_inputs({"b": cases["b"]}, 3)
    with pytest.raises(
        ManifestError, match=r"plain/c\.nii\.gz: a 2-channel model needs inputs named <case>_0000, <case>_0001, \.\.\. \(nnU-Net naming\), got 'c'"
    ):
        collect_inputs([tmp_path / "b_0000.nii.gz", _scan(tmp_path / "plain" / "c.nii.gz")], 2)


def test_one_case_or_channel_given_twice_is_an_error(tmp_path):
    _scan(tmp_path / "x" / "a.nii.gz")
    _scan(tmp_path / "y" / "a.nrrd")
    with pytest.raises(ManifestError, match=r"case 'a': channel 0000 is given twice, by .*x/a\.nii\.gz and .*y/a\.nrrd"):
        collect_inputs([tmp_path / "x", tmp_path / "y"], 1)
    assert list(collect_inputs([tmp_path / "x", tmp_path / "x" / "a.nii.gz"], 1)) == ["a"]  # the same file twice is one input


# What is read -------------------------------------------------------------------------------


def test_wrong_dimensions_and_unreadable_files_fail_before_the_models_load(tmp_path, model_folder, no_model_loading):
    from pipeline.io.images import Geometry, write_image

    write_image(
        np.zeros((20, 30), np.uint8),
        Geometry(size=(30, 20), spacing=(1.0, 1.0), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0)),
        tmp_path / "flat" / "tile.png",
    )
    with pytest.raises(CaseError, match=r"case 'tile', file .*tile\.png: image has 2 dimensions \(size \(30, 20\), x y\[ z\]\); the model expects 3D images"):
        predict_folder(model_folder, tmp_path / "flat", tmp_path / "out")
    broken = _scan(tmp_path / "broken" / "c.nii.gz")
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(CaseError, match=r"case 'c', file .*c\.nii\.gz: cannot be read as an image"):
        predict_folder(model_folder, tmp_path / "broken", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_inputs_and_folders_without_images_say_what_was_found(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError, match=rf"input nowhere does not exist \(looked for {tmp_path}/nowhere; expected image files"):
        collect_inputs("nowhere", 1)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("x")
    (tmp_path / "docs" / "sub").mkdir()
    with pytest.raises(
        ManifestError, match=r"docs holds no images: expected image files \(.*\) or DICOM series folders; found 2 other entr\(ies\) \['notes\.txt', 'sub/'\]"
    ):
        collect_inputs(tmp_path / "docs", 1)
    with pytest.raises(ManifestError, match=r"notes\.txt is not an image: expected image files"):
        collect_inputs(tmp_path / "docs" / "notes.txt", 1)
    _scan(tmp_path / "docs" / "a.nii.gz")
    with caplog.at_level(logging.WARNING, logger="pipeline.io.inputs"):
        assert list(collect_inputs(tmp_path / "docs", 1)) == ["a"]
    assert "not read" in caplog.text and "notes.txt, sub/" in caplog.text


# The output folder ------------------------------------------------------------------------


def test_an_output_folder_among_the_inputs_is_refused_and_the_input_stays(tmp_path, model_folder, capsys):
    scan = _scan(tmp_path / "in" / "scan_01.nii.gz")
    before = scan.read_bytes()
    for output, message in [(tmp_path / "in", "is the input folder"), (tmp_path / "in" / "pred", "lies inside the input folder")]:
        code = main(["predict", "--model", str(model_folder), "--input", str(tmp_path / "in"), "--output", str(output)])
        err = capsys.readouterr().err
        assert code == 1 and f"output folder {output} {message} {tmp_path / 'in'}" in err
    code = main(["predict", "--model", str(model_folder), "--input", str(scan), "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and f"output folder {tmp_path} holds the input {scan} of case 'scan_01'" in err
    assert scan.read_bytes() == before and not (tmp_path / "in" / "pred").exists()
    file_output = _scan(tmp_path / "elsewhere.nii.gz")
    with pytest.raises(ManifestError, match=r"elsewhere\.nii\.gz is a file; expected a folder"):
        check_output_folder(file_output, scan, collect_inputs(scan, 1))
    # Apart from the inputs, the same call predicts.
    assert main(["predict", "--model", str(model_folder), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "scan_01.nii.gz").exists() and scan.read_bytes() == before
