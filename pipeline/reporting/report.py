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
from pipeline.reporting import figures, overlays, provenance
from pipeline.reporting.results import ExperimentResults

TEMPLATES = Path(__file__).parent / "templates"
HEADLINE = ("dice", "iou", "hd95")


def environment() -> jinja2.Environment:
    """Jinja environment with HTML autoescaping (case ids and class names are escaped)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = format_number
    env.filters["pvalue"] = format_p_value
    return env


def format_p_value(value: Any) -> str:
    """p-values with 3 significant digits, small ones in scientific notation, NaN as ``n/a``."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(p):
        return "n/a"
    return f"{p:.2e}" if p < 0.001 else f"{p:.3g}"


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


def _text(value: Any) -> str:
    """A text cell of a table read back from TSV (an empty cell reads as NaN)."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def not_evaluable(summary: pd.DataFrame) -> dict[str, str]:
    """Classes the summary marks as not evaluable (``evaluable`` False), with their notes.

    Summaries written before the ``evaluable`` column existed have none.
    """
    if "evaluable" not in summary.columns:
        return {}
    flags = summary["evaluable"].map(lambda v: str(v).strip().lower() not in ("false", "0", "0.0"))
    return {str(r["class"]): _text(r.get("note")) or f"class {r['class']!r} is not evaluable" for _, r in summary[~flags].iterrows()}


def report_warnings(summary: pd.DataFrame, plan: Mapping[str, Any]) -> list[str]:
    """The warning lines at the top of the report: classes not evaluable, then the dataset
    findings the plan carries from the fingerprint (``plan["warnings"]``)."""
    lines = [f"{name}: {note}" for name, note in not_evaluable(summary).items()]
    training = plan.get("training_class_voxels", {})
    if "n_reference" in summary.columns:
        for _, r in summary.iterrows():
            if str(r["class"]) in training and training[str(r["class"])] == 0 and float(r["n_reference"] or 0) > 0:
                lines.append(f"{r['class']}: occurs in {int(r['n_reference'])} test reference(s) but in no training label; the model never saw it")
    return lines + [f"dataset: {w}" for w in plan.get("warnings", [])]


def headline_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per class: mean and 95% CI of Dice, IoU and HD95 plus the failure counts; ``evaluable``
    is False for a class the summary could not score (no reference holds it)."""
    rows = []
    excluded = not_evaluable(summary)
    for _, r in summary.iterrows():
        row = {
            "class": r["class"],
            "n_cases": r["n_cases"],
            "n_missed": r["n_missed"],
            "n_false_positive": r["n_false_positive"],
            "evaluable": str(r["class"]) not in excluded,
        }
        for m in HEADLINE:
            row[m] = (r.get(f"{m}_mean"), r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high"), r.get(f"{m}_n_nan"))
        row["n_nan"] = " / ".join(format_number(r.get(f"{m}_n_nan", 0)) for m in HEADLINE)
        rows.append(row)
    return rows


def write_experiment_report(
    results: ExperimentResults,
    plan: Mapping[str, Any],
    conventions: Any,
    output: str | os.PathLike[str],
    case_files: Mapping[str, overlays.CaseFiles] | None = None,
    worst_cases: int = 3,
) -> None:
    """Render ``reports/<experiment>.html`` of a segmentation experiment (atomically).

    Per-case rows are sorted worst first (lowest mean Dice over the evaluable classes). The
    gallery shows the ``worst_cases`` worst cases, drawn from ``case_files`` (case id -> its
    image, reference and prediction files); without ``case_files`` there is no gallery. A
    warning list at the top names the classes the summary could not evaluate and the
    dataset findings of the plan (:func:`report_warnings`), then the test cases that are
    not scored.
    """
    experiment, config, per_case, summary = results.experiment, results.config, results.per_case, results.summary
    excluded = not_evaluable(summary)
    scored = per_case[~per_case["class"].astype(str).isin(list(excluded))]
    case_dice = scored.groupby("case", sort=False)["dice"].mean().reindex(per_case["case"].unique())
    order = case_dice.sort_values(na_position="first", kind="stable").index
    ranked = per_case.set_index("case").loc[order].reset_index()
    ranked.insert(1, "case_mean_dice", ranked["case"].map(case_dice))
    columns = [
        c
        for c in (
            "case",
            "case_mean_dice",
            "class",
            "dice",
            "iou",
            "hd",
            "hd95",
            "assd",
            "nsd",
            "precision",
            "recall",
            "volume_ref_ml",
            "volume_pred_ml",
            "missed",
            "false_positive_empty",
        )
        if c in ranked.columns
    ]
    html = (
        environment()
        .get_template("experiment.html.j2")
        .render(
            experiment=experiment,
            dataset=config["dataset"]["name"],
            settings=yaml.safe_dump(json.loads(json.dumps(config["experiments"][experiment])), sort_keys=False),
            config_text=yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False),
            plan_text=json.dumps(plan, indent=2),
            headline=headline_rows(summary),
            warnings=report_warnings(summary, plan) + results.warnings(),
            summary_columns=list(summary.columns),
            summary=summary.assign(**({"note": summary["note"].map(_text)} if "note" in summary.columns else {})).to_dict("records"),
            columns=columns,
            cases=ranked[columns].to_dict("records"),
            n_cases=int(per_case["case"].nunique()),
            curves=figures.learning_curves(results.logs),
            strips=figures.metric_strips(per_case, ["dice", "iou", "hd95", "assd"]),
            volume=figures.metric_vs_volume(per_case),
            gallery=overlays.gallery(per_case, case_files, worst_cases) if case_files is not None else None,
            worst_cases=worst_cases,
            colours={"reference": overlays.REFERENCE_COLOUR, "prediction": overlays.PREDICTION_COLOUR},
            conventions=conventions.as_dict(),
            code_version=provenance.code_version(Path(__file__).parent),
            versions=provenance.library_versions(),
            device=provenance.device_description(),
            times=provenance.stage_times(experiment).to_dict("records"),
        )
    )
    write_text(output, html)
