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

With ``ignore_index`` (the ignore label's class index, one past the predicted classes), voxels
of that index count in no term: cross-entropy skips them, the Dice term sees them as neither
prediction nor reference, and the focal term averages over the other voxels only.

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
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.dice = dice
        self.voxelwise = voxelwise
        self.register_buffer("class_weights", class_weights)
        self.lambda_dice = lambda_dice
        self.lambda_other = lambda_other
        self.focal = None
        if voxelwise == "focal":
            reduction = "mean" if ignore_index is None else "none"
            self.focal = FocalLoss(include_background=True, to_onehot_y=True, gamma=gamma, alpha=class_weights, use_softmax=True, reduction=reduction)
        self.deep_supervision_decay = deep_supervision_decay

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of one output ``B C *spatial`` against ``target`` ``B 1 *spatial`` (same spatial size)."""
        total = logits.new_zeros((), dtype=torch.float32)
        if self.ignore_index is not None:
            return self._masked(logits, target)
        if self.dice is not None:
            total = total + self.lambda_dice * self.dice(logits, target)
        if self.voxelwise == "ce":
            total = total + self.lambda_other * F.cross_entropy(logits, target[:, 0], weight=self.class_weights)
        elif self.voxelwise == "focal":
            total = total + self.lambda_other * self.focal(logits, target)
        return total

    def _masked(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """:meth:`single` without the voxels of class ``ignore_index`` (the Dice term gets
        masked probabilities and one-hot targets: its MONAI loss is built without softmax)."""
        annotated = target != self.ignore_index  # B 1 *spatial
        clean = torch.where(annotated, target, torch.zeros_like(target))
        mask = annotated.to(torch.float32)
        total = logits.new_zeros((), dtype=torch.float32)
        if self.dice is not None:
            probs = torch.softmax(logits.float(), dim=1) * mask
            onehot = F.one_hot(clean[:, 0], logits.shape[1]).movedim(-1, 1).to(torch.float32) * mask
            total = total + self.lambda_dice * self.dice(probs, onehot)
        if self.voxelwise == "ce":
            ce = F.cross_entropy(logits, target[:, 0], weight=self.class_weights, ignore_index=self.ignore_index)
            total = total + self.lambda_other * (ce if annotated.any() else logits.sum() * 0.0)  # all ignored: CE is NaN
        elif self.voxelwise == "focal":
            per_voxel = self.focal(logits, clean) * mask
            total = total + self.lambda_other * per_voxel.sum() / (mask.sum() * logits.shape[1]).clamp(min=1.0)
        return total

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``logits`` (``B C H W [D]`` or a list of them) against ``target`` (``B 1 H W [D]``)."""
        outputs = [logits] if isinstance(logits, torch.Tensor) else list(logits)
        if not outputs:
            raise SettingError("loss got an empty list of outputs.")
        self.check(outputs[0], target)
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

    def check(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Raise a SettingError naming the shapes or values if ``logits`` and ``target`` do not fit."""
        _check(logits, target, self.class_weights, self.ignore_index)


class RegionLoss(SegmentationLoss):
    """Sigmoid loss of region outputs ``B R *spatial`` against class indices ``B 1 *spatial``:
    region ``r``'s target is whether the voxel's class lies in it (``member[k, r]``,
    :func:`pipeline.io.regions.membership`). Terms: MONAI's Dice with sigmoid, binary
    cross-entropy or MONAI's sigmoid focal loss, as nnU-Net's region training (Dice + BCE)."""

    def __init__(
        self,
        member: torch.Tensor,
        dice: nn.Module | None,
        voxelwise: str | None,
        lambda_dice: float,
        lambda_other: float,
        gamma: float,
        deep_supervision_decay: float,
    ) -> None:
        super().__init__(dice, voxelwise if voxelwise != "focal" else None, None, lambda_dice, lambda_other, gamma, deep_supervision_decay)
        self.voxelwise = voxelwise
        self.register_buffer("member", torch.as_tensor(member, dtype=torch.float32))
        if voxelwise == "focal":
            self.focal = FocalLoss(include_background=True, to_onehot_y=False, gamma=gamma, use_softmax=False)

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        multi = self.member[target[:, 0]].movedim(-1, 1)  # B R *spatial, 0/1
        total = logits.new_zeros((), dtype=torch.float32)
        if self.dice is not None:
            total = total + self.lambda_dice * self.dice(logits, multi)
        if self.voxelwise == "ce":
            total = total + self.lambda_other * F.binary_cross_entropy_with_logits(logits.float(), multi)
        elif self.voxelwise == "focal":
            total = total + self.lambda_other * self.focal(logits, multi)
        return total

    def check(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        regions, classes = self.member.shape[1], self.member.shape[0]
        if logits.ndim not in (4, 5) or logits.shape[1] != regions:
            raise SettingError(f"region logits must be B {regions} H W [D] (one channel per region), got shape {tuple(logits.shape)}.")
        if tuple(target.shape) != (logits.shape[0], 1, *logits.shape[2:]) or torch.is_floating_point(target):
            raise SettingError(
                f"target must be B 1 H W [D] integer class indices matching the logits {tuple(logits.shape)}, got {tuple(target.shape)} {target.dtype}."
            )
        if int(target.min()) < 0 or int(target.max()) >= classes:
            raise SettingError(f"target holds class indices {int(target.min())}..{int(target.max())} but {classes} classes are declared.")


def _check(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None, ignore_index: int | None = None) -> None:
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
    if low < 0 or (high >= classes and high != ignore_index):
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


def build_loss(name: str, class_weights: Sequence[float] | None = None, ignore_index: int | None = None, regions: Any = None, **settings: Any) -> nn.Module:
    """Create loss ``name`` (one of :data:`LOSS_NAMES`) with optional per-class weights.

    ``class_weights``: one weight >= 0 per class, background (class 0) first (a list, tuple, numpy
    array or tensor), or None. With ``include_background: false`` and two classes the Dice term has
    a single class, and MONAI ignores its weight.
    ``ignore_index``: the class index of unannotated voxels (the ignore label), left out of every term.
    ``regions``: ``(K, R)`` class-in-region membership for region training (:class:`RegionLoss`;
    every region counts, so ``include_background`` does not apply; no class weights).
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
    voxelwise = {"ce": "ce", "dice_ce": "ce", "focal": "focal", "dice_focal": "focal"}.get(name)
    lambdas = (config["lambda_dice"] if "dice" in name else 0.0, config["lambda_other"] if name in ("dice_ce", "dice_focal") else 1.0)
    if regions is not None:
        if weights is not None or ignore_index is not None:
            raise SettingError("region training takes no class weights and no ignore label; set class_weights to auto or none")
        dice = None
        if "dice" in name:
            dice = DiceLoss(include_background=True, sigmoid=True, smooth_nr=config["smooth_nr"], smooth_dr=config["smooth_dr"], batch=config["batch_dice"])
        return RegionLoss(torch.as_tensor(regions), dice, voxelwise, *lambdas, config["gamma"], config["deep_supervision_decay"])
    dice = None
    if name in ("dice", "dice_ce", "dice_focal"):
        dice_weight = weights if weights is None or config["include_background"] else weights[1:]
        dice = DiceLoss(
            include_background=config["include_background"],
            to_onehot_y=ignore_index is None,  # masked: SegmentationLoss passes probabilities and one-hot targets
            softmax=ignore_index is None,
            smooth_nr=config["smooth_nr"],
            smooth_dr=config["smooth_dr"],
            batch=config["batch_dice"],
            weight=dice_weight,
        )
    return SegmentationLoss(
        dice=dice,
        voxelwise=voxelwise,
        class_weights=weights,
        lambda_dice=config["lambda_dice"] if dice is not None else 0.0,
        lambda_other=config["lambda_other"] if name in ("dice_ce", "dice_focal") else 1.0,
        gamma=config["gamma"],
        deep_supervision_decay=config["deep_supervision_decay"],
        ignore_index=ignore_index,
    )
