"""A linear check of Snakemake's job groups, in place of its quadratic one.

Snakemake 9 validates groups by walking everything upstream of each grouped job, once per
member of its group (``DAG.validate_group``, ``DAG._check_groups``): quadratic in the
cohort, minutes for 1,000 cases and most of an hour for 5,000
(``workflow/benchmarks/bench_dag.py``), even locally, where groups are inactive. Both
look for a path that leaves a group and comes back into it. No such path exists when the
job graph with every group contracted to one node has no cycle, which Kahn's algorithm
decides in O(jobs + edges); then both checks are skipped. When the contracted graph has a
cycle, Snakemake's own checks run unchanged and name the problem.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

#: The DAG methods that are wrapped; without all three the speed-up is not installed.
WRAPPED = ("update_groups", "validate_group", "_check_groups")
_MARK = "_segpipe_fast_group_checks"
_ACYCLIC = "_segpipe_groups_acyclic"


def contracted_graph_is_acyclic(dependencies: Mapping[Any, Iterable[Any]], group_of: Callable[[Any], Hashable | None]) -> bool:
    """Whether the graph has no cycle once each group's jobs are contracted to one node.

    Args:
        dependencies: ``{job: jobs it depends on}`` (every job a key or a dependency).
        group_of: a job's group, or None for an ungrouped job.

    Then no group can depend on itself (a path that leaves a group and comes back would be
    a cycle), whichever connected components end up in one group job.
    """

    def node(job: Any) -> tuple[str, Any]:
        group = group_of(job)
        return ("job", job) if group is None else ("group", group)

    edges: dict[tuple[str, Any], set[tuple[str, Any]]] = defaultdict(set)
    indegree: dict[tuple[str, Any], int] = defaultdict(int)
    for job, upstream in list(dependencies.items()):
        target = node(job)
        indegree[target] += 0
        for dependency in upstream:
            source = node(dependency)
            indegree[source] += 0
            if source != target and target not in edges[source]:
                edges[source].add(target)
                indegree[target] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    done = 0
    while ready:
        done += 1
        for target in edges.get(ready.pop(), ()):
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    return done == len(indegree)


def install_fast_group_checks(dag_class: type | None = None) -> bool:
    """Wrap the group checks of ``dag_class`` (Snakemake's ``DAG``) once.

    ``update_groups`` first decides :func:`contracted_graph_is_acyclic` on the DAG's
    ``dependencies``; while it runs, ``validate_group`` and ``_check_groups`` return at
    once if so and run Snakemake's code otherwise. Installing twice changes nothing.

    Returns:
        Whether the speed-up is in place: False when the class lacks one of
        :data:`WRAPPED` (another Snakemake version), and it is left as it is.
    """
    if dag_class is None:
        from snakemake.dag import DAG as dag_class
    if getattr(dag_class, _MARK, False):
        return True
    if not all(callable(getattr(dag_class, name, None)) for name in WRAPPED):
        return False
    update_groups, validate_group, check_groups = (getattr(dag_class, name) for name in WRAPPED)

    def update(self: Any, *args: Any, **kwargs: Any) -> Any:
        setattr(self, _ACYCLIC, contracted_graph_is_acyclic(self.dependencies, lambda job: job.group))
        try:
            return update_groups(self, *args, **kwargs)
        finally:
            setattr(self, _ACYCLIC, False)

    def validate(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, _ACYCLIC, False):
            return validate_group(self, *args, **kwargs)
        return None

    def check(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, _ACYCLIC, False):
            return check_groups(self, *args, **kwargs)
        return None

    for name, function, original in zip(WRAPPED, (update, validate, check), (update_groups, validate_group, check_groups)):
        function.__name__, function.__doc__, function.__wrapped__ = name, original.__doc__, original  # type: ignore[attr-defined]
        setattr(dag_class, name, function)
    setattr(dag_class, _ACYCLIC, False)
    setattr(dag_class, _MARK, True)
    return True
