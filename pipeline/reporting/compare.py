"""Experiments side by side: per-class statistics, paired tests and a ranking.

The paired test is the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided) on
the per-case Dice of one class, over the test cases that both experiments scored (cases with
NaN Dice in either are left out). p-values are also given Holm-adjusted over the pairs of
experiments within each class.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.atomic import write_text
from pipeline.errors import SettingError
from pipeline.evaluation.summary import MEAN_FOREGROUND
from pipeline.reporting import figures, provenance
from pipeline.reporting.report import HEADLINE, environment

log = logging.getLogger(__name__)


def per_case_dice(per_case: pd.DataFrame) -> pd.DataFrame:
    """Per-case Dice as a ``case x class`` table, with a ``mean_foreground`` column.

    The mean over foreground classes skips NaN classes, as the summary's
    ``mean_foreground`` row does.
    """
    table = per_case.pivot_table(index="case", columns="class", values="dice", aggfunc="first", sort=False, dropna=False)
    table[MEAN_FOREGROUND] = per_case.groupby("case", sort=False)["dice"].mean()
    return table


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(p.shape, np.nan)
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (valid.size - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_test(a: pd.Series, b: pd.Series) -> dict[str, Any]:
    """Wilcoxon signed-rank test of ``a - b`` over the cases (index) present in both.

    Returns ``n`` (pairs used), ``mean_diff`` and ``median_diff`` (a - b), ``statistic`` and
    ``p``; ``p`` is NaN with a ``note`` when there is no pair or every difference is zero.
    """
    pairs = pd.concat([a, b], axis=1, join="inner").dropna()
    diff = (pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy(dtype=np.float64)
    result: dict[str, Any] = {"n": int(diff.size), "mean_diff": math.nan, "median_diff": math.nan, "statistic": math.nan, "p": math.nan, "note": ""}
    if diff.size == 0:
        result["note"] = "no case scored by both"
        return result
    result["mean_diff"], result["median_diff"] = float(diff.mean()), float(np.median(diff))
    if not np.any(diff != 0):
        result["note"] = "identical on every case"
        return result
    test = stats.wilcoxon(diff, alternative="two-sided")
    result["statistic"], result["p"] = float(test.statistic), float(test.pvalue)
    return result


def pairwise_tests(per_case: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every pair of experiments, every class (and the foreground mean): paired Dice test.

    Columns: ``class``, ``a``, ``b``, ``n``, ``mean_diff``, ``median_diff``, ``statistic``,
    ``p``, ``p_holm`` (adjusted over the pairs within the class), ``note``.
    """
    dice = {name: per_case_dice(table) for name, table in per_case.items()}
    classes = list(dict.fromkeys(c for table in dice.values() for c in table.columns))
    rows = []
    for cls in classes:
        block = []
        for a, b in itertools.combinations(dice, 2):
            if cls in dice[a].columns and cls in dice[b].columns:
                block.append({"class": cls, "a": a, "b": b, **paired_test(dice[a][cls], dice[b][cls])})
        for row, adjusted in zip(block, holm([r["p"] for r in block])):
            row["p_holm"] = adjusted
        rows.extend(block)
    columns = ["class", "a", "b", "n", "mean_diff", "median_diff", "statistic", "p", "p_holm", "note"]
    return pd.DataFrame(rows, columns=columns)


def ranking(summaries: Mapping[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """Experiments ordered by mean foreground Dice (highest first; NaN last)."""
    rows = []
    for name, summary in summaries.items():
        fg = summary[summary["class"] == MEAN_FOREGROUND]
        first = fg.iloc[0] if len(fg) else pd.Series(dtype=object)
        rows.append({
            "experiment": name, "link": quote(f"{name}.html"),
            "dice": (first.get("dice_mean", math.nan), first.get("dice_ci_low", math.nan), first.get("dice_ci_high", math.nan)),
            "hd95": (first.get("hd95_mean", math.nan), first.get("hd95_ci_low", math.nan), first.get("hd95_ci_high", math.nan)),
            "n_cases": first.get("n_cases", 0),
            "n_missed": int(summary.loc[summary["class"] != MEAN_FOREGROUND, "n_missed"].sum()),
        })  # fmt: skip
    rows.sort(key=lambda r: -r["dice"][0] if not pd.isna(r["dice"][0]) else math.inf)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def side_by_side(summaries: Mapping[str, pd.DataFrame], metric: str) -> list[dict[str, Any]]:
    """Rows per class: ``{"class": name, experiment: (mean, ci_low, ci_high) ...}``."""
    classes = list(dict.fromkeys(c for s in summaries.values() for c in s["class"]))
    rows = []
    for cls in classes:
        row: dict[str, Any] = {"class": cls}
        for name, summary in summaries.items():
            match = summary[summary["class"] == cls]
            row[name] = tuple(match.iloc[0].get(f"{metric}_{s}", math.nan) for s in ("mean", "ci_low", "ci_high")) if len(match) else None
        rows.append(row)
    return rows


def dice_bars(summaries: Mapping[str, pd.DataFrame]) -> str | None:
    """Grouped bars: mean Dice per class and experiment with the 95% CI as error bars."""
    rows = side_by_side(summaries, "dice")
    if not rows:
        return None
    names = list(summaries)
    width = 0.8 / max(len(names), 1)
    fig, ax = figures.plt.subplots(figsize=(max(5.0, 1.3 * len(rows) * len(names) ** 0.5), 3.6))
    x = np.arange(len(rows))
    for i, name in enumerate(names):
        values = [r[name] or (math.nan,) * 3 for r in rows]
        mean = np.array([v[0] for v in values], dtype=float)
        err = np.abs(np.array([[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]], dtype=float))
        ax.bar(x + (i - (len(names) - 1) / 2) * width, mean, width, yerr=np.nan_to_num(err), capsize=3, label=figures.plain(name))
    ax.set_xticks(x, [figures.plain(r["class"]) for r in rows], rotation=15, fontsize=8)
    ax.set(ylabel="mean Dice (95% CI)", ylim=(0, 1.05), title="Mean Dice per class")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return figures.to_data_uri(fig)


def write_comparison(
    dataset: str,
    per_case: Mapping[str, pd.DataFrame],
    summaries: Mapping[str, pd.DataFrame],
    output: str | os.PathLike[str],
) -> pd.DataFrame:
    """Render ``reports/index.html`` (atomically) and return the table of paired tests.

    ``per_case`` and ``summaries`` map experiment names (in display order) to their
    ``per_case.tsv`` and ``summary.tsv`` tables; links point to ``<experiment>.html`` in the
    same folder as ``output``.
    """
    missing = sorted(set(per_case) ^ set(summaries))
    if missing:
        raise SettingError(f"experiments {missing} have a per-case table or a summary but not both")
    case_sets = {name: set(table["case"]) for name, table in per_case.items()}
    shared = set.intersection(*case_sets.values()) if case_sets else set()
    tests = pairwise_tests(per_case)
    html = (
        environment()
        .get_template("index.html.j2")
        .render(
            dataset=dataset,
            experiments=list(summaries),
            ranking=ranking(summaries),
            metrics=[(m, side_by_side(summaries, m)) for m in HEADLINE],
            tests=tests.to_dict("records"),
            bars=dice_bars(summaries),
            n_shared=len(shared),
            unequal={name: len(cases) for name, cases in case_sets.items() if cases != shared},
            code_version=provenance.code_version(os.path.dirname(__file__)),
        )
    )
    write_text(output, html)
    log.info("compared %d experiments on %d shared test cases", len(summaries), len(shared))
    return tests
