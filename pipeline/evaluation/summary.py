"""Summaries of a per-case table: our statistics per class, and nnU-Net's Dice/IoU summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

SUMMARY_METRICS = [
    "dice", "iou", "precision", "recall", "accuracy",
    "volume_ref_ml", "volume_pred_ml", "volume_diff_ml",
    "hd", "hd95", "assd", "nsd",
]  # fmt: skip
STATISTICS = ["mean", "std", "median", "q25", "q75", "ci_low", "ci_high", "n_valid", "n_nan"]
MEAN_FOREGROUND = "mean_foreground"


def bootstrap_ci(values: np.ndarray, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values`` (1-D, no NaN).

    Resamples cases with replacement ``n_boot`` times; (nan, nan) for no values or n_boot < 1.
    """
    if values.size == 0 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [alpha, 100.0 - alpha])
    return float(low), float(high)


def _describe(values: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Statistics of one metric over cases; NaN values are counted, not used."""
    valid = values[~np.isnan(values)]
    stats: dict[str, float] = dict.fromkeys(STATISTICS, float("nan"))
    if valid.size:
        q25, median, q75 = np.percentile(valid, [25, 50, 75])
        stats.update(
            mean=float(valid.mean()), std=float(valid.std(ddof=1)) if valid.size > 1 else float("nan"),
            median=float(median), q25=float(q25), q75=float(q75),
        )  # fmt: skip
    stats["ci_low"], stats["ci_high"] = bootstrap_ci(valid, n_boot, seed)
    stats["n_valid"], stats["n_nan"] = int(valid.size), int(values.size - valid.size)
    return stats


def _check_table(per_case: pd.DataFrame, needed: list[str]) -> None:
    missing = [c for c in needed if c not in per_case.columns]
    if missing:
        raise ValueError(f"per-case table lacks columns {missing}; expected the output of evaluate_case.")


def summarize(per_case: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per class plus a ``mean_foreground`` row, with statistics over cases.

    Args:
        per_case: concatenated ``evaluate_case`` tables (one row per case and class).
        n_boot: bootstrap resamples for the 95% CI of the mean (0 disables: CI is NaN).
        seed: seed of the bootstrap; each (class, metric) uses the same seed, so a CI does not
            depend on which other classes or metrics are present.

    Returns:
        Columns ``label``, ``class``, ``n_cases``, ``n_missed``, ``n_false_positive``,
        ``n_empty_both``, then ``<metric>_<stat>`` for every metric in ``SUMMARY_METRICS`` and
        every statistic in ``STATISTICS`` (mean/std/median/q25/q75/CI over the non-NaN values;
        ``n_valid``/``n_nan`` count them). Units follow the per-case table (mm, ml, fractions).
        The ``mean_foreground`` row (label -1) first averages each case over its foreground
        classes (NaN classes skipped), then describes those per-case means; its counts are
        totals over classes.
    """
    _check_table(per_case, ["case", "label", "class", "missed", "false_positive_empty", "empty_ref", "empty_pred"])
    _check_table(per_case, SUMMARY_METRICS)
    groups = [(int(lab), str(name), part) for (lab, name), part in per_case.groupby(["label", "class"], sort=True)]
    fg = per_case.groupby("case", sort=True)[SUMMARY_METRICS].mean()  # pandas mean skips NaN
    rows = []
    for label, name, part in groups + [(-1, MEAN_FOREGROUND, None)]:
        src = per_case if part is None else part
        both_empty = src["empty_ref"].astype(bool) & src["empty_pred"].astype(bool)
        row: dict[str, object] = {
            "label": label, "class": name,
            "n_cases": int(src["case"].nunique()),
            "n_missed": int(src["missed"].astype(bool).sum()),
            "n_false_positive": int(src["false_positive_empty"].astype(bool).sum()),
            "n_empty_both": int(both_empty.sum()),
        }  # fmt: skip
        table = fg if part is None else part
        for metric in SUMMARY_METRICS:
            values = table[metric].to_numpy(dtype=np.float64)
            for stat, value in _describe(values, n_boot, seed).items():
                row[f"{metric}_{stat}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def nnunet_style_summary(per_case: pd.DataFrame) -> pd.DataFrame:
    """Dice and IoU summarised as nnU-Net v2's ``summary.json`` does, for comparison.

    nnU-Net sets Dice/IoU to NaN when reference and prediction are both empty
    (tp + fp + fn == 0), whatever ``Conventions.empty_both`` was; averages each class with
    ``np.nanmean`` over cases; and takes ``foreground_mean`` as ``np.mean`` of the class means
    (NaN if any class mean is NaN). Rows: one per class (``label``, ``class``) plus
    ``foreground_mean`` (label -1); columns ``Dice``, ``IoU``, ``n_cases``, ``n_nan``.
    """
    _check_table(per_case, ["label", "class", "tp", "fp", "fn"])
    tp, fp, fn = (per_case[c].to_numpy(dtype=np.float64) for c in ("tp", "fp", "fn"))
    den = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        table = per_case[["label", "class"]].assign(
            Dice=np.where(den > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
            IoU=np.where(den > 0, tp / den, np.nan),
        )
    rows = []
    for (label, name), part in table.groupby(["label", "class"], sort=True):
        dice, iou = part["Dice"].to_numpy(), part["IoU"].to_numpy()
        rows.append({
            "label": int(label), "class": str(name),
            "Dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan"),
            "IoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "n_cases": len(part), "n_nan": int(np.isnan(dice).sum()),
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=["label", "class", "Dice", "IoU", "n_cases", "n_nan"])
    foreground = {
        "label": -1, "class": "foreground_mean",
        "Dice": float(np.mean(out["Dice"])) if len(out) else float("nan"),
        "IoU": float(np.mean(out["IoU"])) if len(out) else float("nan"),
        "n_cases": int(per_case["case"].nunique()) if "case" in per_case else 0,
        "n_nan": int(out["n_nan"].sum()),
    }  # fmt: skip
    return pd.concat([out, pd.DataFrame([foreground])], ignore_index=True)
