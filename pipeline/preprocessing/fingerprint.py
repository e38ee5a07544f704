"""The dataset fingerprint: statistics of the training cases, from their check files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def compute_fingerprint(checks: Sequence[Mapping[str, Any]], labels: Mapping[int, str], channels: Sequence[str]) -> dict[str, Any]:
    """Aggregate per-case check results of the training cases.

    Returns:
        JSON-friendly dict: ``cases``; ``spacings`` and ``shapes`` per case (mm in ITK
        order; voxels in numpy order); ``median_spacing``; ``median_shape``; per channel
        the foreground intensity ``mean``, ``std`` and percentiles 0.5/50/99.5 over the
        pooled samples; ``class_counts`` per case and ``class_totals``; ``empty_label_cases``.
    """
    if not checks:
        raise ValueError("the fingerprint needs at least one training case; the dataset has none (all cases are test cases?)")
    spacings = np.array([c["spacing"] for c in checks], dtype=float)
    shapes = np.array([c["shape"] for c in checks], dtype=int)
    intensity = {}
    for i, name in enumerate(channels):
        pooled = np.concatenate([np.asarray(c["intensity_samples"][i], dtype=np.float64) for c in checks])
        intensity[name] = {
            "mean": float(pooled.mean()),
            "std": float(pooled.std()),
            "percentile_00_5": float(np.percentile(pooled, 0.5)),
            "percentile_50_0": float(np.percentile(pooled, 50)),
            "percentile_99_5": float(np.percentile(pooled, 99.5)),
        }
    counts = {c["case"]: c.get("class_counts", [0] * len(labels)) for c in checks}
    totals = np.sum(list(counts.values()), axis=0)
    return {
        "cases": [c["case"] for c in checks],
        "spacings": spacings.tolist(),
        "shapes": shapes.tolist(),
        "median_spacing": np.median(spacings, axis=0).tolist(),
        "median_shape": np.median(shapes, axis=0).tolist(),
        "intensity": intensity,
        "class_counts": counts,
        "class_totals": {labels[k]: int(v) for k, v in zip(sorted(labels), totals)},
        "empty_label_cases": [c["case"] for c in checks if c.get("empty_label")],
    }
