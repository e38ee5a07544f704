"""Case outcomes: which cases failed their check, and the run's verdict on them.

The workflow's check_case records a failed case in its check JSON (``"failed"``: the
message) instead of failing; :func:`test_outcomes` splits the test cases into passed and
failed (the workflow scores only the passed ones), and :func:`verdict`, the run's last
step, fails naming every failed test case once everything else is made.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.atomic import write_json
from pipeline.errors import FailedCasesError

log = logging.getLogger("pipeline")


def _read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def failed_checks(checks: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{case: message}`` of the check results that record a failure."""
    return {str(c["case"]): str(c["failed"]) for c in checks if c.get("failed")}


def test_outcomes(config: Mapping[str, Any], checks: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> dict[str, Any]:
    """Write which test cases passed their check (``passed``, in the order given) and which
    failed (``failed``: case -> message); the workflow scores only the passed ones."""
    results = [_read_json(p) for p in checks]
    failed = failed_checks(results)
    outcome = {"passed": [str(r["case"]) for r in results if str(r["case"]) not in failed], "failed": failed}
    for case, message in failed.items():
        log.error("test case %s is left out of the scores: %s", case, message)
    write_json(output, outcome)
    return outcome


def verdict(config: Mapping[str, Any], outcomes: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
    """Fail, naming every test case that failed its check, once everything else is made;
    else write ``output`` (the run's last step).

    Raises:
        FailedCasesError: one or more test cases failed their check.
    """
    failed = _read_json(outcomes)["failed"]
    if failed:
        lines = "\n  ".join(f"{case}: {message}" for case, message in failed.items())
        raise FailedCasesError(
            f"{len(failed)} test case(s) failed their check and are left out of every score and report (the others are done):\n  {lines}\n"
            "fix or remove them and run again"
        )
    write_json(output, {"failed": {}})
