"""Inference: ensembles, mirroring, and predictions on the input's own grid and header."""

import numpy as np
import pytest
import torch

from pipeline.config import validate_config
from pipeline.evaluation.validation import dice_per_class
from pipeline.inference.sliding_window import sliding_window
from pipeline.io.images import read_image
from pipeline.io.inputs import collect_inputs
from pipeline.models import build_network as make_model
from pipeline.preprocessing.plan import make_plan
from pipeline.tasks.segmentation.new_images import predict_folder
from pipeline.tasks.segmentation.train import architecture
from pipeline.training.checkpoint import save_checkpoint
from tests.conftest import blob_case, write_volume

DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
CONFIG = {
    "dataset": {"manifest": "m", "labels": {0: "bg", 1: "outer", 2: "inner"}},
    "plan": {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [8, 8, 8], "batch_size": 2},
    "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}}},
}


def _pointwise(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Conv3d(1, 3, kernel_size=1).eval()


def test_ensemble_is_the_mean_of_the_folds_probabilities():
    image = np.random.default_rng(0).normal(size=(1, 10, 12, 9)).astype(np.float32)
    a, b = _pointwise(0), _pointwise(1)
    both = sliding_window([a, b], image, [8, 8, 8], overlap=0.5)
    pa = sliding_window([a], image, [8, 8, 8], overlap=0.5)
    pb = sliding_window([b], image, [8, 8, 8], overlap=0.5)
    torch.testing.assert_close(both, (pa + pb) / 2)
    assert both.shape == (3, 10, 12, 9)
    torch.testing.assert_close(both.sum(0), torch.ones(10, 12, 9))


def test_mirroring_a_mirror_equivariant_model_changes_nothing():
    image = np.random.default_rng(1).normal(size=(1, 9, 11, 10)).astype(np.float32)
    model = _pointwise(2)
    plain = sliding_window([model], image, [8, 8, 8], overlap=0.5)
    mirrored = sliding_window([model], image, [8, 8, 8], overlap=0.5, mirror=True)
    torch.testing.assert_close(plain, mirrored, rtol=1e-5, atol=1e-6)


def test_dice_per_class_with_empty_class():
    ref = np.array([0, 1, 1, 0])
    assert dice_per_class(np.array([0, 1, 0, 0]), ref, 3)[0] == pytest.approx(2 / 3)
    assert np.isnan(dice_per_class(ref, ref, 3)[1])


@pytest.fixture()
def model_folder(tmp_path):
    config = validate_config(CONFIG)
    fingerprint = {"spacings": [[1.0, 1.0, 1.0]], "shapes": [[12, 14, 16]], "intensity": {"image": {}}, "class_totals": {"bg": 10, "outer": 5, "inner": 1}}
    plan = make_plan(fingerprint, config)
    experiment = config["experiments"]["e"]
    arch = architecture(experiment, plan)
    for fold in (0, 1):
        torch.manual_seed(fold)
        model = make_model(arch)
        save_checkpoint(
            tmp_path / "model" / f"fold_{fold}" / "best.pt", {"model": model.state_dict(), "architecture": arch, "plan": plan, "experiment": experiment}
        )
    return tmp_path / "model"


def test_prediction_comes_back_on_an_anisotropic_rotated_input_grid(tmp_path, model_folder):
    image, _ = blob_case(shape=(7, 13, 11))
    source = write_volume(tmp_path / "in" / "scan_01.nii.gz", image, spacing=(0.7, 1.3, 2.5), origin=(10.0, -4.0, 7.5), direction=DIRECTION)
    written = predict_folder(model_folder, tmp_path / "in", tmp_path / "out")
    assert [p.name for p in written] == ["scan_01.nii.gz"]
    labels, geometry = read_image(written[0])
    _, expected = read_image(source)
    assert geometry.mismatch(expected, 1e-5) is None
    assert labels.shape == image.shape and set(np.unique(labels)) <= {0, 1, 2}
    # A second call resumes: existing outputs are kept, not recomputed.
    mtime = written[0].stat().st_mtime_ns
    predict_folder(model_folder, tmp_path / "in", tmp_path / "out")
    assert written[0].stat().st_mtime_ns == mtime


def test_multichannel_inputs_use_nnunet_naming(tmp_path):
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz"):
        write_volume(tmp_path / name, np.zeros((3, 4, 5), np.float32))
    with pytest.raises(Exception, match=r"case 'b': found channel\(s\) \[0\]"):
        collect_inputs(tmp_path, 2)
    (tmp_path / "b_0000.nii.gz").unlink()
    assert list(collect_inputs(tmp_path, 2)) == ["a"]


def test_compiled_models_predict_the_same_probabilities(model_folder):
    """inference.compile: torch.compile'd networks give the eager networks' probabilities."""
    from pipeline.inference.ensemble import load_models

    checkpoints = sorted(model_folder.glob("fold_*/best.pt"))
    eager, state = load_models(checkpoints, make_model, "segmentation")
    compiled, _ = load_models(checkpoints, make_model, "segmentation", compile=True)
    plan = state["plan"]
    assert type(compiled[0]) is not type(eager[0])
    image, _ = blob_case(shape=(10, 13, 11))
    image = image[None].astype(np.float32)
    expected = sliding_window(eager, image, plan["patch_size"], overlap=0.5)
    torch.testing.assert_close(sliding_window(compiled, image, plan["patch_size"], overlap=0.5), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(10, 13, 11), (5, 20, 8)])
def test_stitching_equals_monais_sliding_window_inference(shape):
    """Same windows, weights and padding as MONAI's inferer, with an ensemble of two folds."""
    from monai.inferers import sliding_window_inference

    image = np.random.default_rng(3).normal(size=(1, *shape)).astype(np.float32)
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 3, padding=1)).eval() for _ in range(2)]
    ours = sliding_window(models, image, [8, 8, 8], overlap=0.5)
    with torch.no_grad():
        expected = (
            sum(
                sliding_window_inference(torch.from_numpy(image)[None], [8, 8, 8], 2, lambda w, m=m: torch.softmax(m(w), 1), overlap=0.5, mode="gaussian")[0]
                for m in models
            )
            / 2
        )
    assert ours.shape == (3, *shape)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    half = sliding_window(models, image, [8, 8, 8], overlap=0.5, out_dtype=torch.float16)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), expected, rtol=0, atol=2e-3)


def test_mirror_auto_follows_the_validation_scores():
    from pipeline.inference.ensemble import resolve_mirror

    better, worse = {"dice": 0.80, "dice_mirrored": 0.82}, {"dice": 0.80, "dice_mirrored": 0.79}
    assert resolve_mirror("auto", [better]) and not resolve_mirror("auto", [worse])
    assert resolve_mirror("auto", [better, worse])  # mean gain +0.005
    assert not resolve_mirror("auto", [None]) and not resolve_mirror("auto", [])
    assert resolve_mirror(True, [worse]) and not resolve_mirror(False, [better])
