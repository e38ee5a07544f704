"""Losses: values against MONAI and hand-computed numbers, class weighting, deep supervision, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from monai.losses import DiceCELoss, DiceLoss, FocalLoss

from pipeline.losses import LOSS_NAMES, LOSS_SETTINGS, build_loss

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "loss.schema.yaml"
WEIGHTS = [0.5, 1.0, 3.0]


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.randn(2, 3, 5, 4, 3)
    target = torch.randint(0, 3, (2, 1, 5, 4, 3))
    return logits, target


def test_ce_hand_computed() -> None:
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[0, 1], [1, 1]]]])
    assert build_loss("ce", None)(logits, target).item() == pytest.approx(math.log(2))
    # weighted mean: logit 0 vs 0 for every voxel gives log 2 whatever the weights
    assert build_loss("ce", [1.0, 4.0])(logits, target).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[[[2.0]], [[0.0]]]])  # p(class 0) = e^2 / (e^2 + 1)
    target = torch.tensor([[[[1]]]])
    assert build_loss("ce", None)(logits, target).item() == pytest.approx(math.log1p(math.exp(2.0)))


def test_dice_hand_computed() -> None:
    target = torch.tensor([[[[0, 1], [1, 1]]]])
    perfect = 50.0 * F.one_hot(target[:, 0], 2).permute(0, 3, 1, 2).float()
    assert build_loss("dice", None)(perfect, target).item() == pytest.approx(0.0, abs=1e-4)
    # uniform softmax (0.5 everywhere), foreground only: 1 - 2 * 1.5 / (2 + 3)
    uniform = torch.zeros(1, 2, 2, 2)
    assert build_loss("dice", None)(uniform, target).item() == pytest.approx(1 - 3 / 5, abs=1e-4)


def test_focal_with_gamma_zero_is_cross_entropy_over_classes(batch) -> None:
    logits, target = batch
    focal = build_loss("focal", None, gamma=0.0)(logits, target)
    assert focal.item() == pytest.approx(F.cross_entropy(logits, target[:, 0]).item() / 3, rel=1e-5)


@pytest.mark.parametrize("weights", [None, WEIGHTS])
@pytest.mark.parametrize("include_background", [False, True])
def test_dice_ce_equals_monai(batch, weights, include_background) -> None:
    logits, target = batch
    ours = build_loss("dice_ce", weights, include_background=include_background, lambda_dice=0.7, lambda_other=1.3)
    monai = DiceCELoss(
        include_background=include_background,
        to_onehot_y=True,
        softmax=True,
        lambda_dice=0.7,
        lambda_ce=1.3,
        weight=None if weights is None else torch.tensor(weights),
    )
    assert ours(logits, target).item() == pytest.approx(monai(logits, target).item(), rel=1e-5)


@pytest.mark.parametrize("weights", [None, WEIGHTS])
def test_dice_and_ce_equal_monai_and_torch(batch, weights) -> None:
    logits, target = batch
    w = None if weights is None else torch.tensor(weights)
    monai_dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, batch=True, weight=None if w is None else w[1:])
    assert build_loss("dice", weights, batch_dice=True)(logits, target).item() == pytest.approx(monai_dice(logits, target).item(), rel=1e-5)
    expected_ce = F.cross_entropy(logits, target[:, 0], weight=w)
    assert build_loss("ce", weights)(logits, target).item() == pytest.approx(expected_ce.item(), rel=1e-5)


@pytest.mark.parametrize("weights", [None, WEIGHTS])
def test_focal_and_dice_focal_equal_monai(batch, weights) -> None:
    logits, target = batch
    w = None if weights is None else torch.tensor(weights)
    focal = FocalLoss(include_background=True, to_onehot_y=True, gamma=1.5, alpha=w, use_softmax=True)
    assert build_loss("focal", weights, gamma=1.5)(logits, target).item() == pytest.approx(focal(logits, target).item(), rel=1e-5)
    dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, weight=None if w is None else w[1:])
    expected = 2.0 * dice(logits, target) + 0.5 * focal(logits, target)
    ours = build_loss("dice_focal", weights, gamma=1.5, lambda_dice=2.0, lambda_other=0.5)(logits, target)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_larger_class_weight_gives_larger_gradient_on_that_class(batch, name) -> None:
    logits, target = batch
    norms = []
    for weights in ([1.0, 1.0, 1.0], [1.0, 1.0, 5.0]):
        x = logits.clone().requires_grad_()
        build_loss(name, weights)(x, target).backward()
        norms.append(x.grad[:, 2].norm().item())
    assert norms[1] > 1.5 * norms[0]


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_deep_supervision_weights_halve_and_target_is_resized_by_nearest(batch, name) -> None:
    logits, target = batch
    aux1 = torch.randn(2, 3, 3, 2, 2)
    aux2 = torch.randn(2, 3, 2, 1, 1)
    loss = build_loss(name, WEIGHTS)
    value = loss([logits, aux1, aux2], target)
    small1 = F.interpolate(target.float(), size=(3, 2, 2), mode="nearest").long()
    small2 = F.interpolate(target.float(), size=(2, 1, 1), mode="nearest").long()
    expected = (4 * loss(logits, target) + 2 * loss(aux1, small1) + loss(aux2, small2)) / 7
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    decay = build_loss(name, WEIGHTS, deep_supervision_decay=1.0)([logits, aux1], target)
    assert decay.item() == pytest.approx(((loss(logits, target) + loss(aux1, small1)) / 2).item(), rel=1e-5)


def test_class_weights_may_be_a_numpy_array_or_tensor(batch) -> None:
    import numpy as np

    logits, target = batch
    expected = build_loss("dice_ce", WEIGHTS)(logits, target).item()
    assert build_loss("dice_ce", np.array(WEIGHTS))(logits, target).item() == pytest.approx(expected)
    assert build_loss("dice_ce", torch.tensor(WEIGHTS))(logits, target).item() == pytest.approx(expected)


def test_a_single_element_list_equals_the_tensor(batch) -> None:
    logits, target = batch
    loss = build_loss("dice_ce", None)
    assert loss([logits], target).item() == pytest.approx(loss(logits, target).item())


def test_unknown_loss_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="'tversky'.*'ce', 'dice', 'focal', 'dice_ce', 'dice_focal'"):
        build_loss("tversky", None)


@pytest.mark.parametrize(
    "name, weights, settings, message",
    [
        ("dice_ce", None, {"alpha": 0.3}, "Unknown loss setting 'alpha'"),
        ("ce", None, {"gamma": 3.0}, r"gamma=3.0 applies to \['dice_focal', 'focal'\] only"),
        ("dice_ce", None, {"lambda_dice": -1}, "lambda_dice must be a number >= 0.0, got -1"),
        ("dice_ce", None, {"deep_supervision_decay": 0}, "deep_supervision_decay must be a number > 0.0"),
        ("dice", None, {"include_background": "yes"}, "include_background must be true or false"),
        ("ce", [1.0, -2.0], {}, "class_weights entry must be a number >= 0.0, got -2.0"),
        ("ce", [0.0, 0.0], {}, "at least one positive weight"),
        ("ce", 2.0, {}, "class_weights must be a list"),
    ],
)
def test_bad_settings_raise_clear_errors(name, weights, settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_loss(name, weights, **settings)


def test_settings_of_other_losses_at_their_default_are_accepted(batch) -> None:
    logits, target = batch
    everything = {k: v for table in LOSS_SETTINGS.values() for k, v in table.items()}
    assert torch.isfinite(build_loss("ce", None, **everything)(logits, target))


@pytest.mark.parametrize(
    "logits, target, message",
    [
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4), "integer class indices.*float32"),
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), r"expected shape \(1, 1, 4, 4\)"),
        (torch.zeros(1, 3, 4, 4), torch.full((1, 1, 4, 4), 3), r"class indices 3..3 but the logits have 3 classes"),
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long), "class_weights has 3 entries but the logits have 2"),
    ],
)
def test_bad_inputs_raise_clear_errors(logits, target, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_loss("dice_ce", WEIGHTS)(logits, target)


def test_schema_matches_the_code() -> None:
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert props["name"]["enum"] == list(LOSS_NAMES)
    everything = {k: v for table in LOSS_SETTINGS.values() for k, v in table.items()}
    assert set(props) == {"name", *everything}
    for key, spec in props.items():
        assert "default" in spec and spec.get("description"), key
        if key != "name":
            assert spec["default"] == everything[key], key
            applies_to = spec["description"].split(")")[0].strip("(").split(", ")
            users = [n for n, table in LOSS_SETTINGS.items() if key in table]
            assert set(applies_to) == set(users) or (applies_to == ["all"] and len(users) == len(LOSS_NAMES)), key


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("batch_dice", [False, True])
def test_the_ignore_label_counts_in_no_term(name, batch_dice) -> None:
    """Voxels of the ignore index change neither the loss nor any gradient, whatever the
    network outputs there; with nothing ignored the loss is the plain one."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 1, 6, 6, 6))
    settings = {"batch_dice": batch_dice} if "dice" in name else {}
    plain, masked = build_loss(name, [0.5, 1.0, 2.0], **settings), build_loss(name, [0.5, 1.0, 2.0], ignore_index=3, **settings)
    assert torch.allclose(masked(logits, target), plain(logits, target), atol=1e-5)
    ignored = target.clone()
    ignored[:, :, :3] = 3  # half the volume unannotated
    loss = masked(logits, ignored)
    assert torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad[:, :, :3].abs().max() == 0 and grad[:, :, 3:].abs().max() > 0
    other = logits.detach().clone()
    other[:, :, :3] = torch.randn_like(other[:, :, :3]) * 10
    assert torch.allclose(masked(other, ignored), loss, atol=1e-5)
    assert torch.isfinite(masked(logits, torch.full_like(target, 3)))  # nothing annotated in the batch
