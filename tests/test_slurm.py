"""The workflow on a real SLURM cluster, through snakemake-executor-plugin-slurm.

Needs the one-node test cluster of ``.ci/slurm-cluster.sh up`` and ``SEGPIPE_SLURM=1``
(``.ci/run`` does both); skipped otherwise. The runs use the shipped profile
(workflow/profiles/slurm) plus only what belongs to the test cluster: its partition, no
account, squeue for job status (it has no accounting database) and short status polling.
"""

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.test_workflow import SNAKEMAKE, TINY

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.environ.get("SEGPIPE_SLURM") != "1",
        reason="no SLURM test cluster: run `bash .ci/slurm-cluster.sh up` and set SEGPIPE_SLURM=1 (CI does both)",
    ),
]

PROFILE = REPO / "workflow/profiles/slurm"
PARTITION = os.environ.get("SEGPIPE_SLURM_PARTITION", "debug")
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


def cluster_args() -> list[str]:
    """The test cluster's own settings, on top of the shipped profile.

    The command line replaces the profile's default-resources whole, so they are the
    profile's own with the placeholders filled in: this cluster's partition, no account.
    """
    defaults = yaml.safe_load((PROFILE / "config.yaml").read_text(encoding="utf-8"))["default-resources"]
    defaults = {**{k: v for k, v in defaults.items() if k != "slurm_account"}, "slurm_partition": PARTITION}
    return [
        "--default-resources",
        *(f"{k}={v}" for k, v in defaults.items()),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
    ]


def run(command: list[str], limit: int) -> subprocess.CompletedProcess:
    """Run ``command`` under ``timeout -k 10 limit`` (a stuck status poll cannot hang CI)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["timeout", "-k", "10", str(limit), *command], capture_output=True, text=True, env=env, check=False)


def snakemake_log(workdir: Path) -> str:
    """The text of the latest Snakemake log of ``workdir``."""
    logs = sorted((workdir / ".snakemake/log").glob("*.snakemake.log"))
    assert logs, f"no Snakemake log under {workdir}/.snakemake/log"
    return logs[-1].read_text(encoding="utf-8")


def slurm_state(job_id: str) -> str:
    """JobState of a SLURM job as slurmctld reports it (kept for MinJobAge)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=False).stdout
    match = re.search(r"JobState=(\S+)", out)
    return match.group(1) if match else f"unknown ({out.strip()!r})"


@pytest.fixture(scope="module", autouse=True)
def cluster_answers():
    if shutil.which("sinfo") is None or subprocess.run(["sinfo", "-h"], capture_output=True, check=False).returncode != 0:
        pytest.fail("SEGPIPE_SLURM=1 but no SLURM cluster answers: run `bash .ci/slurm-cluster.sh up`")


@pytest.fixture(scope="module")
def demo_on_slurm(tmp_path_factory):
    """The tiny demo configuration of test_workflow.py, run through sbatch."""
    workdir = tmp_path_factory.mktemp("slurm_demo")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--workflow-profile",
        str(PROFILE),
        *cluster_args(),
        "--verbose",  # logs each sbatch call
    ]
    result = run(command, limit=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_every_job_goes_through_sbatch(demo_on_slurm):
    assert (demo_on_slurm / "reports/tiny.html").exists()
    log = snakemake_log(demo_on_slurm)
    job_ids = SUBMITTED.findall(log)
    # One submission per single job ("rule x:" at the line start) and per group job.
    single = re.findall(r"^rule (\w+):", log, flags=re.MULTILINE)
    groups = re.findall(r"Group job (\w+)", log)
    assert len(job_ids) == len(single) + len(groups) > 0, (job_ids, single, groups)
    assert len(set(job_ids)) == len(job_ids)
    local = [r for r in re.findall(r"^localrule (\w+):", log, flags=re.MULTILINE) if r != "all"]
    assert not local, f"rules run outside SLURM: {local}"
    assert {"train", "fingerprint", "plan", "aggregate", "report"} <= set(single)
    states = {job_id: slurm_state(job_id) for job_id in job_ids}
    assert set(states.values()) == {"COMPLETED"}, states


def test_per_case_rules_run_as_one_job_per_group(demo_on_slurm):
    log = snakemake_log(demo_on_slurm)
    # demo_case + check_case of all cases, then preprocess_case of all of them, then the
    # evaluate_case of the test cases, each in one SLURM job; the prediction of both test
    # cases (inference.cases_per_job 2) is one job of its own, not grouped.
    assert sorted(re.findall(r"Group job (\w+)", log)) == ["check_cases", "predict_cases", "preprocess_cases"]
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log)
    n = TINY["demo"]["cases"]
    assert finished.count("check_case") == n and finished.count("preprocess_case") == n
    assert finished.count("predict_cases_0") == 1 and finished.count("evaluate_case") == TINY["demo"]["test_cases"]


def test_gpu_rules_ask_slurm_for_a_gpu_and_training_for_a_signal(demo_on_slurm):
    calls = re.findall(r"sbatch call: (.*)", snakemake_log(demo_on_slurm))
    train = [c for c in calls if "--comment rule_train_" in c]
    predict = [c for c in calls if re.search(r"--comment rule_predict_cases_\d", c)]
    assert len(train) == 1 and len(predict) == 1, calls
    assert "--gpus=1" in train[0] and "--cpus-per-gpu=" in train[0] and "--signal=TERM@300" in train[0]
    assert "--gpus=1" in predict[0]
    assert not [c for c in calls if "--gpus" in c and c not in train + predict]


MEMORY_SNAKEFILE = """
rule all:
    input:
        "fits.txt",
        "too_big.txt",


rule fits:
    output:
        "fits.txt",
    resources:
        mem_mb=100,
    shell:
        "echo $SLURM_JOB_ID > {{output}}"


rule too_big:
    output:
        "too_big.txt",
    resources:
        mem_mb={mem_mb},
    shell:
        "touch {{output}}"
"""


def test_job_beyond_the_node_fails_at_once_and_the_rest_finishes(tmp_path):
    node_mb = max(int(m.rstrip("+")) for m in subprocess.run(["sinfo", "-h", "-o", "%m"], capture_output=True, text=True, check=True).stdout.split())
    (tmp_path / "Snakefile").write_text(textwrap.dedent(MEMORY_SNAKEFILE.format(mem_mb=node_mb + 1000)))
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(tmp_path / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--executor",
        "slurm",
        "--jobs",
        "2",
        "--keep-going",
        "--default-resources",
        f"slurm_partition={PARTITION}",
        "runtime=5",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
    ]
    result = run(command, limit=120)
    assert result.returncode not in (0, 124, 137), result.stderr[-3000:]
    log = snakemake_log(tmp_path)
    assert "SLURM sbatch failed" in log and "Memory specification can not be satisfied" in log, log[-3000:]
    assert "Error in rule too_big" in log
    assert not (tmp_path / "too_big.txt").exists()
    job_id = (tmp_path / "fits.txt").read_text(encoding="utf-8").strip()
    assert job_id.isdigit() and slurm_state(job_id) == "COMPLETED"
