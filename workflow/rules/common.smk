# Shared set-up: the validated config (defaults filled in) and the run's Layout. What the
# rules wire is computed in pipeline/workflow/; this file only calls it.
import json
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.settings.types import DeploymentMethod

from pipeline.config import resolve_paths, validate_config
from pipeline.errors import PipelineError
from pipeline.io.cases import CASE_ID
from pipeline.workflow import Layout, chunk_resources, config_text, install_fast_group_checks, install_single_job_accounting, pipeline_command, write_if_changed
from pipeline.workflow import params as triggers

# Relative dataset paths are relative to the (last) config file's folder, as by hand.
_CONFIG_DIR = os.path.dirname(os.path.abspath(workflow.configfiles[-1])) if workflow.configfiles else os.getcwd()
try:
    W = Layout(validate_config(resolve_paths(config, _CONFIG_DIR, relative_to=os.getcwd())))
except PipelineError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(W.config)

# Snakemake's group checks are quadratic in the cohort; a linear one replaces them where
# the group graph is acyclic (pipeline/workflow/groups.py).
install_fast_group_checks()
# Snakemake 9 leaks cores when one job is ready and then runs more jobs than --cores allows;
# this makes it count them (pipeline/workflow/scheduling.py).
install_single_job_accounting()

# The resolved config that every `python -m pipeline` call reads; written when jobs are
# about to run (never by a dry run), and only when its text changed.
CONFIG_JSON = "results/config.json"


onstart:
    write_if_changed(CONFIG_JSON, config_text(config))


# Jobs run `{params.pipeline} <stage>`: the Python that runs Snakemake (a venv), or the
# `python` of environment.yml when --sdm conda activates it; the package is taken from
# this repository either way.
PIPELINE = pipeline_command(
    workflow.basedir,
    "python" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else sys.executable,
)
DEMO = W.demo


wildcard_constraints:
    case=CASE_ID.pattern.strip("^$"),
    experiment="[A-Za-z0-9_-]+",
    fold=r"\d+",


def predict_targets(wildcards):
    """Outputs of the `predict` target, or a clear error when it is not configured."""
    try:
        return W.predict_targets()
    except PipelineError as err:
        raise WorkflowError(str(err)) from None


# Which test cases passed their check: a test case whose check file records a failure is
# left out of the scores (predicted for scoring, evaluated and reported only if it passed);
# the run's verdict names it. Read when the DAG is built, not through a checkpoint (after a
# checkpoint Snakemake 9 ran more jobs at once than --cores allow, workflow/benchmarks/RESULTS.md).
# So a case that fails its check in this run fails its preprocessing job here, and is left
# out from the next run on.
OUTCOMES = "results/cases/test_outcomes.json"


def passed_test_cases():
    """The test cases whose check file does not record a failure; a case with no check file
    yet, or one older than the case's files (it is checked again), counts as passed."""
    passed = []
    for case, check in zip(W.test_cases, W.test_checks()):
        if os.path.exists(check):
            inputs = [f for f in W.case_inputs(case) if os.path.exists(f)]
            stale = any(os.path.getmtime(f) > os.path.getmtime(check) for f in inputs)
            with open(check, encoding="utf-8") as f:
                if json.load(f).get("failed") and not stale:
                    continue
        passed.append(case)
    return passed
