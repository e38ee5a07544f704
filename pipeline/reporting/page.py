"""A small self-contained HTML page of sections (text, a table, figures), for the reports of
tasks that need no page of their own, in the style of the segmentation reports (same CSS,
figures inline)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from pipeline.atomic import write_text
from pipeline.reporting import provenance
from pipeline.reporting.report import TEMPLATES, format_number
from pipeline.reporting.results import ExperimentResults


@dataclasses.dataclass
class Table:
    """Column names and rows of display values; numbers are shown with ``digits`` decimals."""

    columns: list[str]
    rows: list[list[Any]]
    digits: int = 2


@dataclasses.dataclass
class Figure:
    """A ``data:image/png`` URI and its caption."""

    uri: str
    caption: str


@dataclasses.dataclass
class Section:
    """One ``<h2>`` section of the page."""

    heading: str
    text: str = ""
    table: Table | None = None
    figures: list[Figure] = dataclasses.field(default_factory=list)
    pre: str = ""


def table_of(frame: pd.DataFrame, digits: int = 2) -> Table:
    """A :class:`Table` of a data frame (its columns in order)."""
    return Table([str(c) for c in frame.columns], frame.astype(object).values.tolist(), digits)


def render_page(title: str, subtitle: str, sections: Sequence[Section], output: str | os.PathLike[str]) -> None:
    """Write the page to ``output`` (atomically), with provenance (code and library versions, device)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = format_number
    html = env.get_template("task_report.html.j2").render(
        title=title,
        subtitle=subtitle,
        sections=list(sections),
        code_version=provenance.code_version(Path(__file__).parent),
        versions=provenance.library_versions(),
        device=provenance.device_description(),
    )
    write_text(output, html)


def render_experiment_page(results: ExperimentResults, title: str, sections: Sequence[Section], output: str | os.PathLike[str]) -> None:
    """Write an experiment's page (atomically): ``sections`` after a section on how the cases
    were scored and which test cases are not (when there is anything to say), then the
    experiment's settings."""
    warnings = results.warnings()
    first = [Section("How the cases were scored" if results.notes else "Test cases not scored", "; ".join(warnings) + ".")] if warnings else []
    settings = Section("Settings", pre=yaml.safe_dump(json.loads(json.dumps(results.settings)), sort_keys=False))
    subtitle = f"Dataset: {results.config['dataset']['name']}"
    render_page(f"Experiment {results.experiment} - {title}", subtitle, [*first, *sections, settings], output)


def read_logs(paths: Sequence[str | os.PathLike[str]]) -> dict[str, pd.DataFrame]:
    """Training logs (``fold_<k>/log.tsv``) by fold folder name."""
    return {Path(p).parent.name: pd.read_csv(p, sep="\t") for p in paths}
