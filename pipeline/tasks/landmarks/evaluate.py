"""Landmark evaluation: radial errors in mm and their summary per landmark.

Per-case table (one row per case and landmark): ``case, landmark``, the true and predicted
world coordinates (``x_true``, ``x_pred``, ... mm, ITK/LPS), the signed differences
``dx, dy[, dz]`` (predicted - true), ``radial_error_mm`` and, where the predictions have
them, the prediction's ``confidence`` and ``flagged`` (confidence below ``min_confidence``).
Summary (one row per landmark and one ``all`` row): ``n``, ``mean``, ``std``, ``median``,
``p95``, ``max`` (mm), the success detection rate ``sdr_<r>mm`` (% of points within ``r`` mm)
for each radius and ``flagged`` (how many points were flagged). Flagged points are counted in
every statistic, like the others: a flag warns, it does not hide an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.tasks.landmarks.table import AXES, LandmarkError, case_points

SDR_RADII_MM = (2.0, 2.5, 3.0, 4.0)
#: Per-landmark columns of a prediction table carried into the per-case table.
CARRIED = ("confidence", "fold_spread_mm", "flagged")


def radial_errors(predicted: pd.DataFrame, truth: pd.DataFrame, names: Sequence[str], source: str = "the landmark table") -> pd.DataFrame:
    """Per case and landmark radial error (mm) of ``predicted`` against ``truth``.

    Both tables have ``case, landmark, x, y[, z]`` (mm). Every predicted case must have every
    landmark of ``names`` in ``truth``.

    Raises:
        LandmarkError: a landmark is missing from either table (named in the message).
    """
    if predicted.empty:
        raise LandmarkError("no predicted landmarks to evaluate")
    columns = [c for c in AXES if c in predicted.columns]
    carried = [c for c in CARRIED if c in predicted.columns]
    rows = []
    for case in dict.fromkeys(predicted["case"]):
        pred = case_points(predicted, case, names, "the predictions")
        true = case_points(truth, case, names, source)
        diff = pred - true
        extra = predicted.loc[predicted["case"] == case].set_index("landmark")
        for k, name in enumerate(names):
            row = {"case": case, "landmark": name}
            row.update({f"{a}_true": true[k, i] for i, a in enumerate(columns)})
            row.update({f"{a}_pred": pred[k, i] for i, a in enumerate(columns)})
            row.update({f"d{a}": diff[k, i] for i, a in enumerate(columns)})
            row["radial_error_mm"] = float(np.linalg.norm(diff[k]))
            row.update({c: extra.loc[name, c] for c in carried})
            rows.append(row)
    return pd.DataFrame(rows)


def error_statistics(errors: np.ndarray, radii: Sequence[float] = SDR_RADII_MM) -> dict[str, float]:
    """``n, mean, std, median, p95, max`` (mm) and ``sdr_<r>mm`` (%) of radial ``errors``; NaN when empty."""
    errors = np.asarray(errors, dtype=np.float64)
    stats: dict[str, float] = {"n": float(errors.size)}
    if errors.size == 0:
        stats.update({k: float("nan") for k in ("mean", "std", "median", "p95", "max")})
        stats.update({f"sdr_{r:g}mm": float("nan") for r in radii})
        return stats
    stats.update(
        {
            "mean": float(errors.mean()),
            "std": float(errors.std(ddof=1)) if errors.size > 1 else 0.0,
            "median": float(np.median(errors)),
            "p95": float(np.percentile(errors, 95)),
            "max": float(errors.max()),
        }
    )
    stats.update({f"sdr_{r:g}mm": float(100.0 * np.mean(errors <= r)) for r in radii})
    return stats


def summarize_errors(per_case: pd.DataFrame, radii: Sequence[float] = SDR_RADII_MM) -> pd.DataFrame:
    """Summary table: one row per landmark (table order) and a last row ``all``."""
    flags = per_case["flagged"].astype(str).str.lower().isin(("true", "1")) if "flagged" in per_case else pd.Series(False, index=per_case.index)
    rows = [
        {"landmark": name, **error_statistics(group["radial_error_mm"].to_numpy(), radii), "flagged": int(flags[group.index].sum())}
        for name, group in per_case.groupby("landmark", sort=False)
    ]
    rows.append({"landmark": "all", **error_statistics(per_case["radial_error_mm"].to_numpy(), radii), "flagged": int(flags.sum())})
    frame = pd.DataFrame(rows)
    frame["n"] = frame["n"].astype(int)
    return frame
