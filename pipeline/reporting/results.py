"""What every experiment report is made of: the experiment, its configuration and its tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


@dataclasses.dataclass(frozen=True)
class ExperimentResults:
    """An experiment's tables as its report reads them.

    Attributes:
        experiment: the experiment's name.
        config: the validated configuration.
        per_case, summary: the experiment's evaluation tables (case ids as text).
        logs: the trained folds' training logs by fold folder name (``fold_<k>``).
        unscored: test cases of the dataset that are not in the tables -> why (failed their
            check; no reference).
        notes: lines on how the cases were scored (cross-validation without test cases).
    """

    experiment: str
    config: Mapping[str, Any]
    per_case: pd.DataFrame
    summary: pd.DataFrame
    logs: Mapping[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    unscored: Mapping[str, str] = dataclasses.field(default_factory=dict)
    notes: Sequence[str] = ()

    @property
    def settings(self) -> Mapping[str, Any]:
        """The experiment's own section of the configuration."""
        return self.config["experiments"][self.experiment]

    def warnings(self) -> list[str]:
        """The notes on how the cases were scored, then one line per test case that is not
        scored, naming why."""
        return [*self.notes, *(f"test case {case} is not scored: {why}" for case, why in self.unscored.items())]
