"""Resources of the prediction jobs that handle a chunk of cases (``inference.cases_per_job``).

Their rules (``predict_cases_<i>``) are made per chunk, so a profile cannot name them in
``set-resources``; they take the resources of ``predict_case`` as the profile left them (one
case per job), with the runtime multiplied by the number of cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def chunk_resources(per_case: Mapping[str, Any], cases: int) -> dict[str, Any]:
    """Resources of a job that predicts ``cases`` cases one after another.

    Args:
        per_case: the resources of the one-case rule (``rules.predict_case.rule.resources``:
            declared values with the profile's ``set-resources`` applied); Snakemake's own
            entries (``_cores``, ``_nodes``) are left out.
        cases: the number of cases of the chunk.

    Returns:
        The same resources with an integer ``runtime`` (minutes) times ``cases``; a runtime
        given as a string or a function is kept as it is.
    """
    resources = {k: v for k, v in per_case.items() if not k.startswith("_")}
    runtime = resources.get("runtime")
    if isinstance(runtime, int) and not isinstance(runtime, bool):
        resources["runtime"] = runtime * cases
    return resources
