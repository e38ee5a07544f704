"""Segmentation metrics: exact, fast and explicit about their conventions.

Public API::

    Conventions            empty-mask / percentile / tolerance / boundary conventions
    evaluate_case          one case -> long table, one row per foreground class
    summarize              per-case table -> one row per class + "mean_foreground"
    nnunet_style_summary   Dice/IoU summarised the way nnU-Net's summary.json does
    evaluate_paths         files or folders -> per-case and summary TSV (and Parquet)

Run by hand: ``python -m pipeline.evaluation REF PRED OUT.tsv --dataset-json dataset.json``.
"""

from .case import CASE_COLUMNS, evaluate_case
from .conventions import Conventions
from .files import evaluate_paths
from .summary import SUMMARY_METRICS, nnunet_style_summary, summarize

__all__ = [
    "CASE_COLUMNS",
    "SUMMARY_METRICS",
    "Conventions",
    "evaluate_case",
    "evaluate_paths",
    "nnunet_style_summary",
    "summarize",
]
