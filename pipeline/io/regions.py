"""Region-based targets for nested structures (BraTS: whole tumour ⊃ tumour core ⊃ enhancing
tumour), as nnU-Net trains them: one sigmoid output per region instead of one softmax class
per label.

``dataset.regions`` lists the regions outer first, each ``{name, labels}`` with the label
values it contains. A network predicts one probability per region and voxel; the label map
written back paints each region (> 0.5) with its *own* value, the one value it holds that no
later region holds, inner regions over outer ones (nnU-Net's ``regions_class_order``):
for BraTS' ``[1, 2, 3]``, ``[1, 3]``, ``[3]`` these are 2, 1 and 3. Metrics are per region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.io.label_values import trained_classes


def region_problems(regions: Sequence[Mapping[str, Any]], labels: Mapping[Any, Any]) -> list[str]:
    """What is wrong with ``dataset.regions`` against the declared ``labels`` (empty when fine)."""
    declared = {int(k) for k in labels}
    problems = []
    names = [r["name"] for r in regions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"dataset.regions: region name(s) {twice} are given twice; give each region once")
    for i, region in enumerate(regions):
        values = [int(v) for v in region["labels"]]
        unknown = sorted(set(values) - declared - {0}) + ([0] if 0 in values else [])
        if unknown:
            problems.append(f"dataset.regions[{i}] ({region['name']}): label value(s) {unknown} are not foreground labels of dataset.labels {sorted(declared)}")
    if not problems:
        for i, region in enumerate(regions):
            own = own_values(regions)[i]
            if len(own) != 1:
                later = [r["name"] for r in regions[i + 1 :]]
                problems.append(
                    f"dataset.regions[{i}] ({region['name']}): holds {len(own)} value(s) {own} that no later region {later} holds; "
                    "expected exactly one, the value its voxels get in the written label map (list the regions outer first, each inside the one before)"
                )
    return problems


def own_values(regions: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Per region, the values it holds that no later region holds (sorted)."""
    out = []
    for i, region in enumerate(regions):
        later = {int(v) for r in regions[i + 1 :] for v in r["labels"]}
        out.append(sorted({int(v) for v in region["labels"]} - later))
    return out


def paint_values(regions: Sequence[Mapping[str, Any]]) -> list[int]:
    """The value each region's voxels get in a written label map, in region order."""
    return [own[0] for own in own_values(regions)]


def membership(regions: Sequence[Mapping[str, Any]], labels: Mapping[Any, Any]) -> np.ndarray:
    """``(K, R)`` bool: whether the class of index ``k`` (declared values in order) lies in region ``r``."""
    values = sorted(int(k) for k in labels)
    return np.array([[v in {int(x) for x in r["labels"]} for r in regions] for v in values], dtype=bool).reshape(len(values), len(regions))


def region_masks(index: np.ndarray, member: np.ndarray) -> np.ndarray:
    """``(R, *spatial)`` bool region masks of a label-index map ``(*spatial)``."""
    return np.moveaxis(member[np.asarray(index, dtype=np.int64)], -1, 0)


def output_channels(plan: Mapping[str, Any]) -> int:
    """Network outputs: one per region (``plan.regions``), else one per trained class."""
    return len(plan["regions"]) if plan.get("regions") else trained_classes(plan["labels"])


def output_names(plan: Mapping[str, Any]) -> list[str]:
    """Names of the outputs: the regions, else the trained classes (background first)."""
    if plan.get("regions"):
        return [r["name"] for r in plan["regions"]]
    return list(plan["labels"].values())[: trained_classes(plan["labels"])]
