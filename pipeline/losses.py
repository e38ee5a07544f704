"""Segmentation losses: ``build_loss(name, class_weights, **settings)``.

Every loss takes ``logits`` ``B C H W [D]`` (float, before softmax) or a list of them (deep
supervision: ``[full_res, aux1, ...]``) and ``target`` ``B 1 H W [D]`` of integer class indices,
and returns a scalar. Built on MONAI losses (softmax, one-hot targets):

- ``ce``: cross-entropy, class-weighted like ``torch.nn.CrossEntropyLoss`` (weighted mean over voxels).
- ``dice``: ``monai.losses.DiceLoss``; class weights multiply the per-class Dice terms before the
  mean (MONAI semantics, not normalised). With ``include_background: false`` the background
  class (0) and its weight are left out of the Dice term.
- ``focal``: ``monai.losses.FocalLoss`` with softmax, ``gamma``, and per-class alpha = class weights.
- ``dice_ce`` / ``dice_focal``: ``lambda_dice * dice + lambda_other * (ce | focal)``.

Cross-entropy and focal terms always include the background class. For a list of outputs the
target is resized (nearest) to each output, and the terms are weighted
``deep_supervision_decay ** k`` for output ``k`` (0.5: halving per level as nnU-Net), normalised to sum 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, FocalLoss
from torch import nn

from pipeline.errors import SettingError

LOSS_NAMES: tuple[str, ...] = ("ce", "dice", "focal", "dice_ce", "dice_focal")

#: Settings of each loss with their defaults (also the schema defaults).
LOSS_SETTINGS: dict[str, dict[str, Any]] = {
    "ce": {},
    "dice": {"include_background": False, "batch_dice": False, "smooth_nr": 1e-5, "smooth_dr": 1e-5},
    "focal": {"gamma": 2.0},
}
LOSS_SETTINGS["dice_ce"] = {**LOSS_SETTINGS["dice"], "lambda_dice": 1.0, "lambda_other": 1.0}
LOSS_SETTINGS["dice_focal"] = {**LOSS_SETTINGS["dice_ce"], **LOSS_SETTINGS["focal"]}
for _settings in LOSS_SETTINGS.values():
    _settings["deep_supervision_decay"] = 0.5


class SegmentationLoss(nn.Module):
    """Weighted sum of a Dice term and a per-voxel term, with input checks and deep supervision."""

    def __init__(
        self,
        dice: nn.Module | None,
        voxelwise: str | None,
        class_weights: torch.Tensor | None,
        lambda_dice: float,
        lambda_other: float,
        gamma: float,
        deep_supervision_decay: float,
    ) -> None:
        super().__init__()
        self.dice = dice
        self.voxelwise = voxelwise
        self.register_buffer("class_weights", class_weights)
        self.lambda_dice = lambda_dice
        self.lambda_other = lambda_other
        self.focal = None
        if voxelwise == "focal":
            self.focal = FocalLoss(include_background=True, to_onehot_y=True, gamma=gamma, alpha=class_weights, use_softmax=True)
        self.deep_supervision_decay = deep_supervision_decay

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of one output ``B C *spatial`` against ``target`` ``B 1 *spatial`` (same spatial size)."""
        total = logits.new_zeros((), dtype=torch.float32)
        if self.dice is not None:
            total = total + self.lambda_dice * self.dice(logits, target)
        if self.voxelwise == "ce":
            total = total + self.lambda_other * F.cross_entropy(logits, target[:, 0], weight=self.class_weights)
        elif self.voxelwise == "focal":
            total = total + self.lambda_other * self.focal(logits, target)
        return total

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``logits`` (``B C H W [D]`` or a list of them) against ``target`` (``B 1 H W [D]``)."""
        outputs = [logits] if isinstance(logits, torch.Tensor) else list(logits)
        if not outputs:
            raise SettingError("loss got an empty list of outputs.")
        _check(outputs[0], target, self.class_weights)
        if len(outputs) == 1:
            return self.single(outputs[0], target)
        weights = [self.deep_supervision_decay**k for k in range(len(outputs))]
        norm = sum(weights)
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, output in zip(weights, outputs):
            if output.shape[:2] != outputs[0].shape[:2] or output.ndim != outputs[0].ndim:
                raise SettingError(f"deep supervision outputs must share batch and channel sizes, got {tuple(outputs[0].shape)} and {tuple(output.shape)}.")
            scaled = target
            if output.shape[2:] != target.shape[2:]:
                scaled = F.interpolate(target.float(), size=output.shape[2:], mode="nearest").long()
            total = total + (weight / norm) * self.single(output, scaled)
        return total


def _check(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None) -> None:
    """Raise a ValueError naming the shapes or values if ``logits`` and ``target`` do not fit."""
    if logits.ndim not in (4, 5):
        raise SettingError(f"logits must be B C H W or B C H W D, got shape {tuple(logits.shape)}.")
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise SettingError(
            f"target must be B 1 H W [D] class indices matching the logits, expected shape {expected} "
            f"for logits {tuple(logits.shape)}, got {tuple(target.shape)}."
        )
    if torch.is_floating_point(target) or target.dtype == torch.bool:
        raise SettingError(f"target must hold integer class indices (e.g. torch.long), got dtype {target.dtype}.")
    classes = logits.shape[1]
    if classes < 2:
        raise SettingError(f"softmax losses need at least 2 classes (background included), got {classes} logit channels.")
    low, high = int(target.min()), int(target.max())
    if low < 0 or high >= classes:
        raise SettingError(f"target holds class indices {low}..{high} but the logits have {classes} classes (0..{classes - 1}).")
    if class_weights is not None and class_weights.numel() != classes:
        raise SettingError(
            f"class_weights has {class_weights.numel()} entries but the logits have {classes} classes; give one weight per class, background included."
        )


def _check_number(key: str, value: Any, minimum: float, maximum: float = math.inf, inclusive: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (minimum <= value if inclusive else minimum < value) and value <= maximum
    if not ok:
        bound = ">=" if inclusive else ">"
        upper = f" and <= {maximum}" if maximum < math.inf else ""
        raise SettingError(f"loss setting {key} must be a number {bound} {minimum}{upper}, got {value!r}.")
    return float(value)


def build_loss(name: str, class_weights: Sequence[float] | None = None, **settings: Any) -> nn.Module:
    """Create loss ``name`` (one of :data:`LOSS_NAMES`) with optional per-class weights.

    ``class_weights``: one weight >= 0 per class, background (class 0) first (a list, tuple, numpy
    array or tensor), or None. With ``include_background: false`` and two classes the Dice term has
    a single class, and MONAI ignores its weight.
    ``settings``: see :data:`LOSS_SETTINGS`; settings of other losses are accepted only at their default.

    Raises:
        ValueError: unknown name (listing valid names), unknown setting, or an invalid value.
    """
    if name not in LOSS_SETTINGS:
        raise SettingError(f"Unknown loss name {name!r}; valid names are {list(LOSS_NAMES)}.")
    own = LOSS_SETTINGS[name]
    every = {key: default for table in LOSS_SETTINGS.values() for key, default in table.items()}
    for key, value in settings.items():
        if key not in every:
            raise SettingError(f"Unknown loss setting {key!r} for {name!r}; valid settings are {sorted(own)}.")
        if key not in own and value != every[key]:
            users = sorted(n for n, table in LOSS_SETTINGS.items() if key in table)
            raise SettingError(f"Loss setting {key}={value!r} applies to {users} only, not to {name!r}; remove it.")
    config = {**every, **{k: v for k, v in settings.items() if k in own}}
    weights = None
    if class_weights is not None:
        if hasattr(class_weights, "tolist"):  # numpy array or torch tensor
            class_weights = class_weights.tolist()
        if isinstance(class_weights, (str, bytes)) or not isinstance(class_weights, Sequence) or len(class_weights) < 2:
            raise SettingError(f"class_weights must be a list with one weight per class (>= 2) or None, got {class_weights!r}.")
        values = [_check_number("class_weights entry", w, 0.0) for w in class_weights]
        if max(values) <= 0:
            raise SettingError(f"class_weights must hold at least one positive weight, got {list(class_weights)!r}.")
        weights = torch.tensor(values, dtype=torch.float32)
    for key in ("lambda_dice", "lambda_other", "gamma"):
        _check_number(key, config[key], 0.0)
    _check_number("deep_supervision_decay", config["deep_supervision_decay"], 0.0, 1.0, inclusive=False)
    for key in ("smooth_nr", "smooth_dr"):
        _check_number(key, config[key], 0.0)
    for key in ("include_background", "batch_dice"):
        if not isinstance(config[key], bool):
            raise SettingError(f"loss setting {key} must be true or false, got {config[key]!r}.")
    dice = None
    if name in ("dice", "dice_ce", "dice_focal"):
        dice_weight = weights if weights is None or config["include_background"] else weights[1:]
        dice = DiceLoss(
            include_background=config["include_background"],
            to_onehot_y=True,
            softmax=True,
            smooth_nr=config["smooth_nr"],
            smooth_dr=config["smooth_dr"],
            batch=config["batch_dice"],
            weight=dice_weight,
        )
    voxelwise = {"ce": "ce", "dice_ce": "ce", "focal": "focal", "dice_focal": "focal"}.get(name)
    return SegmentationLoss(
        dice=dice,
        voxelwise=voxelwise,
        class_weights=weights,
        lambda_dice=config["lambda_dice"] if dice is not None else 0.0,
        lambda_other=config["lambda_other"] if name in ("dice_ce", "dice_focal") else 1.0,
        gamma=config["gamma"],
        deep_supervision_decay=config["deep_supervision_decay"],
    )
