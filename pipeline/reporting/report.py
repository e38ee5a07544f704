"""The per-experiment HTML report: one file, figures embedded, nothing fetched."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from pipeline.atomic import write_text
from pipeline.reporting import figures, provenance

TEMPLATES = Path(__file__).parent / "templates"
HEADLINE = ("dice", "iou", "hd95")


def environment() -> jinja2.Environment:
    """Jinja environment with HTML autoescaping (case ids and class names are escaped)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = format_number
    return env


def format_number(value: Any, digits: int = 3) -> str:
    """Numbers to fixed digits, NaN as ``NaN``; other values as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:.{digits}f}"


def headline_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per class: mean and 95% CI of Dice, IoU and HD95 plus the failure counts."""
    rows = []
    for _, r in summary.iterrows():
        row = {"class": r["class"], "n_cases": r["n_cases"], "n_missed": r["n_missed"], "n_false_positive": r["n_false_positive"]}
        for m in HEADLINE:
            row[m] = (r.get(f"{m}_mean"), r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high"), r.get(f"{m}_n_nan"))
        rows.append(row)
    return rows


def write_experiment_report(
    experiment: str,
    config: Mapping[str, Any],
    per_case: pd.DataFrame,
    summary: pd.DataFrame,
    training_logs: Mapping[str, pd.DataFrame],
    plan: Mapping[str, Any],
    conventions: Any,
    output: str | os.PathLike[str],
) -> None:
    """Render ``reports/<experiment>.html`` (atomically).

    Per-case rows are sorted worst first (lowest mean Dice over classes).
    """
    order = per_case.groupby("case")["dice"].mean().sort_values(na_position="first").index
    ranked = per_case.set_index("case").loc[order].reset_index()
    columns = [c for c in ("case", "class", "dice", "iou", "hd", "hd95", "assd", "nsd", "precision", "recall", "volume_ref_ml", "volume_pred_ml", "missed", "false_positive_empty") if c in ranked.columns]
    html = environment().get_template("experiment.html.j2").render(
        experiment=experiment,
        dataset=config["dataset"]["name"],
        settings=yaml.safe_dump(json.loads(json.dumps(config["experiments"][experiment])), sort_keys=False),
        config_text=yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False),
        plan_text=json.dumps(plan, indent=2),
        headline=headline_rows(summary),
        summary_columns=list(summary.columns),
        summary=summary.to_dict("records"),
        columns=columns,
        cases=ranked[columns].to_dict("records"),
        n_cases=int(per_case["case"].nunique()),
        curves=figures.learning_curves(training_logs),
        strips=figures.metric_strips(per_case, ["dice", "iou", "hd95", "assd"]),
        volume=figures.metric_vs_volume(per_case),
        conventions=conventions.as_dict(),
        code_version=provenance.code_version(Path(__file__).parent),
        versions=provenance.library_versions(),
        device=provenance.device_description(),
        times=provenance.stage_times(experiment).to_dict("records"),
    )
    write_text(output, html)
