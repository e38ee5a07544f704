"""The stress run of issue 10: the whole workflow on many tiny cases with --cores 2.

Issue 10 ran 200 cases; with the cores counted (at most 2 jobs at once) that is 429 jobs and
about 9.5 minutes on 2 cores, mostly Snakemake's own ~0.3 s per job and each job's start, so
CI runs 120 cases (about 5.5 minutes) to keep its whole run within 30 minutes; the stress
script's default stays 200. Marked ``slow``; CI runs it before the default suite
(`.ci/run`). `workflow/benchmarks/stress_run.py` prints the same figures.
"""

import importlib.util

import pytest

from tests.conftest import REPO

CASES = 120


@pytest.mark.slow
def test_many_cases_finish_without_a_failed_job_in_bounded_memory(tmp_path):
    spec = importlib.util.spec_from_file_location("stress_run", REPO / "workflow" / "benchmarks" / "stress_run.py")
    stress = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stress)
    result = stress.run_stress(CASES, tmp_path)
    assert result["returncode"] == 0 and result["failed"] == 0, result["output"][-4000:]
    assert "(100%) done" in result["done"]
    assert len(list((tmp_path / "results" / "preprocessed").iterdir())) == CASES
    # Snakemake plus at most two one-core jobs at a time (pipeline/workflow/scheduling.py):
    # far below the machine's memory.
    assert 1 <= result["most_jobs"] <= 2, result["most_jobs"]
    assert 0 < result["peak_mb"] < 4000, result["peak_mb"]
    print(f"stress run: {result['done']}; {result['seconds']:.0f} s; peak memory {result['peak_mb']:.0f} MB; at most {result['most_jobs']} jobs at once")
