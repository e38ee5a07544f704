"""A fix for Snakemake 9's local scheduler: it starts more jobs than ``--cores`` allows.

Snakemake 9.10 to at least 9.15 (``JobScheduler.job_selector``) takes the greedy selector's
answer at once when a single job is ready, without subtracting that job's resources from
what is free; when the job ends its resources are added back. So every time exactly one
job was ready, the pool grows by that job's threads and resources: on 2 cores, two
``threads: 2`` trainings then run at once (measured, workflow/benchmarks/RESULTS.md; the
same defect as snakemake/snakemake#3913 and #3815). :func:`install_single_job_accounting`
makes the single-job answer subtract what it takes, as every other answer does.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

_MARK = "_segpipe_single_job_accounting"
#: The defective lines: the single-job answer returned before the resources are updated.
DEFECT = re.compile(r"if len\(jobs\) == 1:\s*return self\.job_selector_greedy\(")


def has_defect(scheduler_class: type) -> bool:
    """Whether ``scheduler_class.job_selector`` returns the single-job answer unaccounted."""
    try:
        source = inspect.getsource(scheduler_class.job_selector)
    except (AttributeError, OSError, TypeError):
        return False
    return bool(DEFECT.search(source)) and "update_available_resources" in source


def install_single_job_accounting(scheduler_class: type | None = None) -> bool:
    """Make ``scheduler_class`` (Snakemake's ``JobScheduler``) subtract the resources of the
    job it selects when a single job is ready; installing twice changes nothing.

    Returns:
        Whether the fix is in place: False where the class does not have the defect (another
        Snakemake version), and it is left as it is.
    """
    if scheduler_class is None:
        from snakemake.scheduling.job_scheduler import JobScheduler as scheduler_class
    if getattr(scheduler_class, _MARK, False):
        return True
    if not has_defect(scheduler_class):
        return False
    original_init = scheduler_class.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        greedy = self.job_selector_greedy

        def select(jobs: Any, *rest: Any) -> Any:
            selected = greedy(jobs, *rest)
            if len(jobs) == 1 and selected:  # the path that returns without accounting
                self.update_available_resources(selected)
            return selected

        self.job_selector_greedy = select

    init.__wrapped__ = original_init  # type: ignore[attr-defined]
    scheduler_class.__init__ = init
    setattr(scheduler_class, _MARK, True)
    return True
