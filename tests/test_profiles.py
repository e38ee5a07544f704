"""The SLURM profile (workflow/profiles/slurm/config.yaml) covers every rule of every shipped
config: GPU rules ask SLURM for a GPU, a runtime and memory; every rule has an entry; and a
full group of per-case jobs stays within a GPU partition's time limit (12 hours).

The DAG of each config/*.yaml is built in this process with Snakemake's API (a dry run,
nothing is written under results/); the profile is applied as Snakemake applies it: a rule's
``set-resources`` entry over its own ``resources:`` over ``default-resources``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.test_workflow import SNAKEMAKE, TINY

PROFILE = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text(encoding="utf-8"))
CONFIGS = sorted((REPO / "config").glob("*.yaml"))
GROUP_LIMIT_MINUTES = 12 * 60
#: Rules made per chunk of inference.cases_per_job: they take predict_case's entry.
CHUNK = re.compile(r"^predict_cases_\d+$")


def own_resources(rule: Any) -> dict[str, int]:
    """The integer resources a rule declares itself (``resources:``), Snakemake's ``_`` ones left out."""
    return {k: v for k, v in rule.resources.items() if not k.startswith("_") and isinstance(v, int)}


def profile_resources(rule: Any) -> dict[str, Any]:
    """What a job of ``rule`` asks SLURM for under the profile."""
    return {**PROFILE["default-resources"], **own_resources(rule), **PROFILE["set-resources"].get(rule.name, {})}


def profile_threads(rule: Any) -> int:
    return PROFILE.get("set-threads", {}).get(rule.name, rule.resources["_cores"])


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda p: p.name)
def workflow(request, tmp_path_factory):
    """The Snakemake workflow of one shipped config, with the DAG of its default target."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings, StorageSettings

    workdir = tmp_path_factory.mktemp(request.param.stem)
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(
                resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(configfiles=[request.param]),
                storage_settings=StorageSettings(), snakefile=REPO / "Snakefile", workdir=workdir,
            )  # fmt: skip
            workflow_api.dag(DAGSettings()).execute_workflow(executor="dryrun")
            workflow = workflow_api._workflow
            jobs, dependencies = list(workflow.dag.jobs), dict(workflow.dag.dependencies)
    finally:
        os.chdir(cwd)
    assert not (workdir / "results").exists(), "the dry run wrote under results/"
    rules = {r.name: r for r in workflow.rules if not r.norun}
    return SimpleNamespace(rules=rules, jobs=jobs, dependencies=dependencies)


def test_every_gpu_rule_asks_slurm_for_a_gpu_a_runtime_and_memory(workflow):
    gpu_rules = [r for r in workflow.rules.values() if own_resources(r).get("gpu") and not CHUNK.match(r.name)]
    assert {"train", "predict_case", "predict_new_case"} <= {r.name for r in gpu_rules}
    for rule in gpu_rules:
        entry = PROFILE["set-resources"].get(rule.name)
        assert entry, f"rule {rule.name} asks for a GPU but has no set-resources entry in the SLURM profile"
        assert entry.get("gpu", 0) >= own_resources(rule)["gpu"], f"{rule.name}: the profile asks SLURM for no GPU"
        assert {"runtime", "mem_mb"} <= set(entry), f"{rule.name}: the profile's entry lacks runtime or mem_mb: {entry}"
        assert entry["mem_mb"] >= own_resources(rule).get("mem_mb", 0)


def test_every_other_rule_has_an_entry_that_meets_its_needs(workflow):
    for rule in workflow.rules.values():
        if CHUNK.match(rule.name) or own_resources(rule).get("gpu"):
            continue
        assert rule.name in PROFILE["set-resources"], f"rule {rule.name} has no set-resources entry in the SLURM profile"
        asked = profile_resources(rule)
        assert {"runtime", "mem_mb"} <= set(asked), f"{rule.name}: neither its entry nor default-resources give runtime and mem_mb"
        assert asked["mem_mb"] >= own_resources(rule).get("mem_mb", 0), f"{rule.name} needs more memory than the profile asks for"
        assert not asked.get("gpu"), f"{rule.name} uses no GPU but the profile asks SLURM for one"


def test_every_rule_in_the_profile_exists():
    from pipeline.tasks import TASKS

    smk = "".join(f.read_text(encoding="utf-8") for f in (REPO / "workflow/rules").glob("*.smk"))
    names = set(re.findall(r"^(?:rule|checkpoint) (\w+):", smk, flags=re.MULTILINE))
    names |= set(re.findall(r"^use rule \w+ as (\w+)", smk, flags=re.MULTILINE))
    names |= {f"compare_{t.name}" for t in TASKS.values() if t.compare_output}  # one per task (report.smk)
    assert set(PROFILE["set-resources"]) <= names, set(PROFILE["set-resources"]) - names
    assert set(PROFILE.get("set-threads", {})) <= names


def components(workflow, group: str) -> list[list[Any]]:
    """The connected components of the jobs of ``group`` (what group-components counts)."""
    members = {j for j in workflow.jobs if j.group == group}
    neighbours = defaultdict(set)
    for job, upstream in workflow.dependencies.items():
        for dependency in upstream:
            if job in members and dependency in members:
                neighbours[job].add(dependency)
                neighbours[dependency].add(job)
    seen, out = set(), []
    for start in members:
        if start in seen:
            continue
        stack, component = [start], []
        seen.add(start)
        while stack:
            job = stack.pop()
            component.append(job)
            for other in neighbours[job] - seen:
                seen.add(other)
                stack.append(other)
        out.append(component)
    return out


def full_group_runtime(workflow, component: list[Any], size: int) -> int:
    """Minutes that SLURM is asked for by a group job of ``size`` copies of ``component``,
    by Snakemake's own computation (GroupResources.basic_layered, as for a submitted group)."""
    from snakemake.resources import GroupResources

    inside = set(component)
    level: dict[Any, int] = {}

    def depth(job: Any) -> int:
        if job not in level:
            level[job] = 1 + max((depth(d) for d in workflow.dependencies.get(job, ()) if d in inside), default=-1)
        return level[job]

    levels = defaultdict(list)
    for job in component:
        rule = workflow.rules[job.rule.name]
        resources = {k: v for k, v in profile_resources(rule).items() if isinstance(v, int)}
        fake = SimpleNamespace(resources={**resources, "_cores": profile_threads(rule), "_nodes": 1}, pipe_group=None)
        levels[depth(job)] += [fake] * size
    constraints = {"_cores": PROFILE["cores"], "_nodes": 1, **PROFILE.get("resources", {})}
    asked = GroupResources.basic_layered([levels[k] for k in sorted(levels)], constraints, run_local=False)
    return asked["runtime"]


def test_a_full_group_of_per_case_jobs_asks_at_most_12_hours(workflow):
    groups = {j.group for j in workflow.jobs if j.group}
    assert groups == set(PROFILE["group-components"]), "every group of the workflow needs a size in group-components, and only those"
    for group in sorted(groups):
        size = PROFILE["group-components"][group]
        largest = max(components(workflow, group), key=len)
        minutes = full_group_runtime(workflow, largest, size)
        rules = sorted({j.rule.name for j in largest})
        assert minutes <= GROUP_LIMIT_MINUTES, f"a full {group} group ({size} x {rules}) asks SLURM for {minutes} minutes"
        # GPU jobs of a group run one after another on its one GPU: their runtimes add up.
        gpu_minutes = sum(profile_resources(workflow.rules[j.rule.name])["runtime"] for j in largest if own_resources(workflow.rules[j.rule.name]).get("gpu"))
        assert gpu_minutes * size <= minutes


def test_prediction_chunks_take_predict_cases_entry_with_the_runtime_of_their_cases(tmp_path):
    """inference.cases_per_job 2 (the tiny config of test_workflow.py): one chunk rule of two
    cases, through the real profile (a dry run: Snakemake reads the profile itself)."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    command = [SNAKEMAKE, "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
               "--workflow-profile", str(REPO / "workflow/profiles/slurm")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    block = re.search(r"^rule predict_cases_0:\n(.*?)\n\n", output, flags=re.MULTILINE | re.DOTALL)
    assert block, output[-3000:]
    resources = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", block.group(1)).group(1)))
    entry = PROFILE["set-resources"]["predict_case"]
    assert int(resources["runtime"]) == 2 * entry["runtime"] and int(resources["mem_mb"]) == entry["mem_mb"] and resources["gpu"] == "1"
    assert f"threads: {PROFILE['set-threads']['predict_case']}" in block.group(1)
    assert not Path(tmp_path / "results").exists()
