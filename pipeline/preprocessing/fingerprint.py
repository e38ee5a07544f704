"""The dataset fingerprint: statistics of the training cases, from their check files.

Besides the statistics, the fingerprint lists dataset-level findings on the labels
(:func:`class_findings`) under ``warnings``; each is logged, the plan carries them and the
experiment report shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.errors import SettingError

log = logging.getLogger(__name__)


def _class_count(check: Mapping[str, Any], value: int) -> int:
    """Voxels of label ``value`` in a check result (0 for an unlabelled case)."""
    counts = check.get("class_counts") or []
    return int(counts[value]) if value < len(counts) else 0


def _labelled(check: Mapping[str, Any]) -> bool:
    """Whether the case of a check result has a label (older check files lack ``labelled``)."""
    return bool(check.get("labelled", "class_counts" in check))


def _cases(names: Sequence[str]) -> str:
    """Up to five case ids for a message."""
    return ", ".join(names[:5]) + (f" ... ({len(names)} in all)" if len(names) > 5 else "")


def class_findings(train: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]], labels: Mapping[int, str]) -> list[str]:
    """Findings on the declared classes over all labels of the dataset, as sentences.

    ``train`` and ``test``: the check results of the training and test cases (test ones
    may be absent: then only the training labels are looked at). Found: cases without a label; labels
    all background everywhere (or in every training label); a declared class absent from
    every training label (only in test labels, or in no label at all); a class absent from
    every test label (it cannot be evaluated).
    """
    findings = []
    train_lab, test_lab = [c for c in train if _labelled(c)], [c for c in test if _labelled(c)]
    for split, checks, effect in (("training", train, "they count as all background in the statistics"), ("test", test, "they cannot be evaluated")):
        missing = [str(c["case"]) for c in checks if not _labelled(c)]
        if missing:
            findings.append(f"{len(missing)} {split} case(s) have no label ({_cases(missing)}): {effect}")
    foreground = [v for v in sorted(labels) if v != 0]
    in_train = {v: [str(c["case"]) for c in train_lab if _class_count(c, v) > 0] for v in foreground}
    in_test = {v: [str(c["case"]) for c in test_lab if _class_count(c, v) > 0] for v in foreground}
    where = f"{len(train_lab)} training and {len(test_lab)} test label(s)"
    if not any(in_train.values()) and not any(in_test.values()):
        findings.append(
            f"every label is all background: none of the {where} holds a foreground voxel of any declared class "
            f"{[labels[v] for v in foreground]}; check the label files and dataset.labels"
        )
        return findings
    if not any(in_train.values()):
        findings.append(f"all {len(train_lab)} training label(s) are all background: there is no foreground to learn")
    for v in foreground:
        name = f"class {labels[v]!r} (label {v})"
        if not in_train[v] and in_test[v]:
            findings.append(
                f"{name} occurs only in test labels ({len(in_test[v])} of {len(test_lab)}: {_cases(in_test[v])}), "
                f"in none of the {len(train_lab)} training labels: the network cannot learn it"
            )
        elif not in_train[v]:
            seen = where if test_lab else f"{len(train_lab)} training label(s)"
            findings.append(f"{name} is declared in dataset.labels but occurs in none of the {seen}")
        elif test_lab and not in_test[v]:
            findings.append(
                f"{name} occurs in none of the {len(test_lab)} test label(s): it cannot be evaluated (the evaluation summary reports it as not evaluable)"
            )
    return findings


def compute_fingerprint(
    checks: Sequence[Mapping[str, Any]], labels: Mapping[int, str], channels: Sequence[str], test_checks: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Aggregate per-case check results of the training cases.

    ``test_checks`` (the test cases' check results) feed only the findings, never the
    statistics.

    Returns:
        JSON-friendly dict: ``cases`` (the training cases); ``spacings`` and ``shapes`` per
        case (mm in ITK order; voxels in numpy order); ``median_spacing``; ``median_shape``;
        per channel the foreground intensity ``mean``, ``std`` and percentiles 0.5/50/99.5
        over the pooled samples; ``class_counts`` per case and ``class_totals``;
        ``empty_label_cases``; ``test_class_totals`` (voxels per class over the test labels);
        ``warnings``: the findings of :func:`class_findings`, each also logged.
    """
    if not checks:
        raise SettingError("the fingerprint needs at least one training case; the dataset has none (all cases are test cases?)")
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
    counts = {c["case"]: [_class_count(c, v) for v in sorted(labels)] for c in checks}
    totals = np.sum(list(counts.values()), axis=0)
    warnings = class_findings(checks, test_checks, labels)
    for warning in warnings:
        log.warning("dataset: %s", warning)
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
        "test_class_totals": {labels[v]: sum(_class_count(c, v) for c in test_checks) for v in sorted(labels)},
        "warnings": warnings,
    }
