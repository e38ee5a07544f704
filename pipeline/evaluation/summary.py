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
#: Metrics that score a prediction against the reference: NaN for a class that is not
#: evaluable (no reference holds it). The volumes are described for every class.
SCORE_METRICS = [m for m in SUMMARY_METRICS if not m.startswith("volume_")]


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


def _not_evaluable_note(name: str, n_cases: int) -> str:
    """The summary's note on a class that no test reference holds."""
    return (
        f"not evaluable: class {name!r} is absent from every test reference ({n_cases} case(s)); its scores are NaN, "
        "not the per-case empty-reference values, and it is left out of mean_foreground"
    )


def summarize(per_case: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per class plus a ``mean_foreground`` row, with statistics over cases.

    A class absent from every reference (``n_reference`` 0) is not evaluable: whatever the
    per-case convention gave its rows (``empty_both="one"`` gives Dice 1.0 where the
    prediction is empty too), its ``SCORE_METRICS`` statistics are NaN (``n_valid`` 0),
    ``evaluable`` is False, ``note`` says why, and it is left out of ``mean_foreground``;
    its volumes and counts (false positives) are still described.

    Args:
        per_case: concatenated ``evaluate_case`` tables (one row per case and class).
        n_boot: bootstrap resamples for the 95% CI of the mean (0 disables: CI is NaN).
        seed: seed of the bootstrap; each (class, metric) uses the same seed, so a CI does not
            depend on which other classes or metrics are present.

    Returns:
        Columns ``label``, ``class``, ``n_cases``, ``n_reference`` (cases whose reference
        holds the class; for ``mean_foreground`` any evaluable class), ``evaluable``,
        ``n_missed``, ``n_false_positive``, ``n_empty_both``, then ``<metric>_<stat>`` for
        every metric in ``SUMMARY_METRICS`` and every statistic in ``STATISTICS``
        (mean/std/median/q25/q75/CI over the non-NaN values; ``n_valid``/``n_nan`` count
        them), and ``note`` (empty, or why a class is not evaluable). Units follow the
        per-case table (mm, ml, fractions). The ``mean_foreground`` row (label -1) first
        averages each case over its evaluable foreground classes (NaN classes skipped),
        then describes those per-case means; its counts are totals over classes.
    """
    _check_table(per_case, ["case", "label", "class", "missed", "false_positive_empty", "empty_ref", "empty_pred"])
    _check_table(per_case, SUMMARY_METRICS)
    per_case = per_case.reset_index(drop=True)
    groups = [(int(lab), str(name), part) for (lab, name), part in per_case.groupby(["label", "class"], sort=True)]
    has_ref = ~per_case["empty_ref"].astype(bool)
    absent = {label: name for label, name, part in groups if not has_ref[part.index].any()}
    kept = ~per_case["label"].astype(int).isin(list(absent))
    fg = per_case[kept].groupby("case", sort=True)[SUMMARY_METRICS].mean()  # pandas mean skips NaN
    rows = []
    for label, name, part in groups + [(-1, MEAN_FOREGROUND, None)]:
        src = per_case if part is None else part
        both_empty = src["empty_ref"].astype(bool) & src["empty_pred"].astype(bool)
        scored = len(absent) < len(groups) if part is None else label not in absent
        row: dict[str, object] = {
            "label": label, "class": name,
            "n_cases": int(src["case"].nunique()),
            "n_reference": int(per_case.loc[kept & has_ref, "case"].nunique() if part is None else has_ref[part.index].sum()),
            "evaluable": scored,
            "n_missed": int(src["missed"].astype(bool).sum()),
            "n_false_positive": int(src["false_positive_empty"].astype(bool).sum()),
            "n_empty_both": int(both_empty.sum()),
        }  # fmt: skip
        table = fg if part is None else part
        for metric in SUMMARY_METRICS:
            values = table[metric].to_numpy(dtype=np.float64)
            if not scored and metric in SCORE_METRICS:
                values = np.full(values.size, np.nan)
            for stat, value in _describe(values, n_boot, seed).items():
                row[f"{metric}_{stat}"] = value
        if part is not None:
            row["note"] = _not_evaluable_note(name, row["n_cases"]) if not scored else ""
        elif not scored:
            row["note"] = "not evaluable: every test reference is all background, so no foreground class can be scored"
        else:
            row["note"] = f"leaves out the not evaluable class(es) {sorted(absent.values())}" if absent else ""
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
