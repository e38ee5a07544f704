"""Snakemake keeps local jobs within --cores (pipeline/workflow/scheduling.py): a real run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.workflow.scheduling import has_defect, install_single_job_accounting

REPO = Path(__file__).resolve().parents[1]

# A chain of four one-core jobs (a single job is ready at each step: the case that leaked
# its cores), then two jobs that each take both cores.
SNAKEFILE = """
import sys
sys.path.insert(0, {repo!r})
from pipeline.workflow.scheduling import install_single_job_accounting
{install}

def span(name):
    return f"echo start {{name}} $(date +%s.%N) >> spans.txt; sleep {{{{params.seconds}}}}; touch {{{{output}}}}; echo end {{name}} $(date +%s.%N) >> spans.txt"

rule all:
    input: expand("out/wide{{i}}.txt", i=range(2))

rule first:
    output: "out/step0.txt"
    params: seconds=0.2
    shell: span("step0")

rule step:
    input: lambda wildcards: f"out/step{{int(wildcards.j) - 1}}.txt"
    output: "out/step{{j,[1-3]}}.txt"
    params: seconds=0.2
    shell: span("step{{wildcards.j}}")

rule wide:
    input: "out/step3.txt"
    output: "out/wide{{i}}.txt"
    threads: 2
    params: seconds=1
    shell: span("wide{{wildcards.i}}")
"""


def most_threads_at_once(spans: str) -> int:
    """The most threads running at once in a ``spans.txt`` (``start|end <job> <time>`` lines)."""
    events = []
    for line in spans.splitlines():
        kind, job, time = line.split()
        events.append((float(time), 0 if kind == "end" else 1, 2 if job.startswith("wide") else 1))
    running = most = 0
    for _, starts, threads in sorted(events):
        running += threads if starts else -threads
        most = max(most, running)
    return most


def run(folder: Path, install: bool) -> int:
    snakefile = folder / "Snakefile"
    snakefile.write_text(SNAKEFILE.format(repo=str(REPO), install="install_single_job_accounting()" if install else ""))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "-q"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return most_threads_at_once((folder / "spans.txt").read_text())


def test_jobs_stay_within_the_cores_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "fixed").mkdir()
    assert run(tmp_path / "fixed", install=True) <= 2
    if has_defect(__import__("snakemake.scheduling.job_scheduler", fromlist=["JobScheduler"]).JobScheduler):
        (tmp_path / "plain").mkdir()
        assert run(tmp_path / "plain", install=False) > 2  # the defect the fix is for is real


def test_install_is_idempotent_and_leaves_a_sound_scheduler_alone() -> None:
    class Sound:
        def job_selector(self, jobs):
            selected = self.job_selector_greedy(jobs)
            self.update_available_resources(selected)
            return selected

    assert not has_defect(Sound) and install_single_job_accounting(Sound) is False
    from snakemake.scheduling.job_scheduler import JobScheduler

    first = install_single_job_accounting(JobScheduler)
    assert install_single_job_accounting(JobScheduler) is first
