"""Pretrained weights are actually loaded: by name and shape, encoder only or all that fits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.models import build_model
from pipeline.models.heads import CoordinateRegressor
from pipeline.training.checkpoint import save_checkpoint
from pipeline.training.init_from import load_pretrained, matching_tensors, pretrained_checkpoint

torch.set_num_threads(1)
SETTINGS = {"channels": [4, 8, 16]}


def _save_source(root: Path, name: str = "dae", fold: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    source = build_model("unet", 2, 1, 1, **SETTINGS)  # a denoiser: outputs = image channels
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    save_checkpoint(root / name / f"fold_{fold}" / "best.pt", {"model": source.state_dict(), "architecture": {"task": "denoise"}})
    return source.state_dict()


@pytest.mark.parametrize("part", ["encoder", "all"])
def test_segmentation_network_starts_from_the_denoiser(tmp_path: Path, part: str) -> None:
    source = _save_source(tmp_path / "models")
    torch.manual_seed(2)
    target = build_model("unet", 2, 1, 3, **SETTINGS)  # 3 classes: the output head differs
    before = {k: v.clone() for k, v in target.state_dict().items()}
    loaded = load_pretrained(target, {"init_from": "dae", "init_part": part}, tmp_path / "models" / "seg" / "fold_0")
    after = target.state_dict()
    encoder = [k for k in after if k.startswith("encoder.")]
    assert encoder and all(torch.equal(after[k], source[k]) for k in encoder)
    decoder = [k for k in after if k.startswith(("decoder.", "upsamples.")) and after[k].dtype.is_floating_point and after[k].numel() > 1]
    assert decoder
    assert all(torch.equal(after[k], source[k]) for k in decoder) == (part == "all")
    assert all(torch.equal(after[k], before[k]) for k in decoder) == (part == "encoder")
    assert torch.equal(after["output.weight"], before["output.weight"])  # 3 classes vs 1 channel: left as built
    assert loaded == (len(encoder) if part == "encoder" else len([k for k in after if not k.startswith("output.")]))


def test_regressor_encoder_loads_from_the_full_network(tmp_path: Path) -> None:
    source = _save_source(tmp_path / "models")
    regressor = CoordinateRegressor("unet", 2, 1, 4, **SETTINGS)
    loaded = load_pretrained(regressor, {"init_from": "dae", "init_part": "encoder"}, tmp_path / "models" / "lm" / "fold_0")
    state = regressor.state_dict()
    assert loaded == len([k for k in state if k.startswith("encoder.")])
    assert all(torch.equal(state[k], source[k]) for k in state if k.startswith("encoder."))


def test_lowest_fold_is_the_source(tmp_path: Path) -> None:
    _save_source(tmp_path, fold=3)
    _save_source(tmp_path, fold=1)
    assert pretrained_checkpoint(tmp_path, "dae").parent.name == "fold_1"


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="has no trained fold"):
        pretrained_checkpoint(tmp_path, "dae")
    _save_source(tmp_path / "models")
    other = build_model("unet", 2, 1, 3, channels=[6, 12])
    with pytest.raises(PipelineError, match="no tensor of .* fits this network"):
        load_pretrained(other, {"init_from": "dae", "init_part": "encoder"}, tmp_path / "models" / "seg" / "fold_0")
    with pytest.raises(ValueError, match="init_part must be one of"):
        matching_tensors({}, {}, "decoder")
