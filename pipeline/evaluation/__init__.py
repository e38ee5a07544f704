"""Segmentation metrics: exact, fast and explicit about their conventions.

Public API::

    Conventions            empty-mask / percentile / tolerance / boundary conventions
    evaluate_case          one case -> long table, one row per foreground class
    summarize              per-case table -> one row per class + "mean_foreground"
    nnunet_style_summary   Dice/IoU summarised the way nnU-Net's summary.json does
    evaluate_paths         files or folders -> per-case and summary TSV (and Parquet)

Run by hand: ``python -m pipeline.evaluation REF PRED OUT.tsv --dataset-json dataset.json``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each public name lives. Imported on first use (PEP 562), so the metrics of
#: ``validation`` and ``overlap`` load without the file readers' SimpleITK and nibabel
#: (the GPU check, workflow/benchmarks/gpu_check.py, runs where those are not installed).
_PUBLIC = {
    "CASE_COLUMNS": "case",
    "evaluate_case": "case",
    "Conventions": "conventions",
    "evaluate_paths": "files",
    "SUMMARY_METRICS": "summary",
    "nnunet_style_summary": "summary",
    "summarize": "summary",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
