"""Which cases a dataset without test cases is scored on: cross-validation.

A dataset as nnU-Net users have it (only ``imagesTr``/``labelsTr``, no test list) has no
held-out test cases. Then every training case is scored on the prediction of the one fold
model that did not train on it (out-of-fold), for the folds that an experiment trains
(``training.folds``; all of ``plan.folds`` score every case). The folds are the plan's
(:func:`pipeline.preprocessing.plan.kfold_splits`, a pure function of the sorted case ids,
``plan.folds`` and ``plan.seed``), so they are known when the DAG is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.errors import PipelineError
from pipeline.preprocessing.plan import kfold_splits


def validation_folds(train_cases: Sequence[str], plan: Mapping[str, Any]) -> dict[str, int]:
    """``{case: the fold whose validation set holds it}`` of the plan's split; empty when the
    split cannot be made (fewer cases than folds: the plan stage names that error)."""
    try:
        splits = kfold_splits(list(train_cases), plan["folds"], plan["seed"])
    except PipelineError:
        return {}
    return {case: fold for fold, split in enumerate(splits) for case in split["val"]}


def held_out_cases(train_cases: Sequence[str], folds_of: Mapping[str, int], trained: Sequence[int]) -> list[str]:
    """The training cases held out by one of the ``trained`` folds, in manifest order."""
    wanted = set(trained)
    return [c for c in train_cases if folds_of.get(c) in wanted]


def evaluation_note(scored: int, train_cases: int, trained: Sequence[int], folds: int) -> str:
    """The line a report shows to say how a dataset without test cases was scored."""
    every = sorted(trained) == list(range(folds))
    return (
        f"the dataset has no test cases: scored by cross-validation, each training case on the prediction of the fold model that "
        f"did not train on it ({scored} of {train_cases} training cases, folds {sorted(trained)} of {folds}"
        + (")" if every else f"; set training.folds to {list(range(folds))} to score every case)")
    )
