# Shared set-up: validate the config (defaults filled in), list cases and experiments.
import json
import os
import re
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, workflow.basedir)

from snakemake.settings.types import DeploymentMethod

from pipeline.config import validate_config
from pipeline.errors import PipelineError
from pipeline.io.manifest import CASE_ID, dataset_table, manifest_path

try:
    _validated = validate_config(config)
except PipelineError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

# The resolved config, read by every `python -m pipeline` call; rewritten only on change
# so that its timestamp stays put.
CONFIG_JSON = "results/config.json"
_text = json.dumps(config, indent=2, sort_keys=True) + "\n"
if not Path(CONFIG_JSON).exists() or Path(CONFIG_JSON).read_text() != _text:
    Path(CONFIG_JSON).parent.mkdir(parents=True, exist_ok=True)
    _tmp = Path(f"{CONFIG_JSON}.{os.getpid()}.tmp")
    _tmp.write_text(_text)
    _tmp.replace(CONFIG_JSON)

# Jobs run `{params.pipeline} <stage>`: the Python that runs Snakemake (a venv), or the
# `python` of environment.yml when --sdm conda activates it; the package is taken from
# this repository either way.
_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
PIPELINE = "PYTHONPATH={} {} -m pipeline".format(
    shlex.quote(workflow.basedir), "python" if _CONDA else shlex.quote(sys.executable)
)
DEMO = config["dataset"]["demo"]
CASES = dataset_table(config)
TRAIN_CASES = list(CASES.index[CASES["split"] == "train"])
TEST_CASES = list(CASES.index[CASES["split"] == "test"])
EXPERIMENTS = list(config["experiments"])
# Experiments compared in reports/index.html (landmark and denoising ones have their own pages).
SEGMENTATION_EXPERIMENTS = [e for e in EXPERIMENTS if config["experiments"][e]["task"] == "segmentation"]
CHANNELS = [c["name"] for c in config["dataset"]["channels"]]
if not TEST_CASES:
    raise WorkflowError(
        f"the dataset has no test cases: mark some with split=test in {manifest_path(config)}"
    )


wildcard_constraints:
    case=CASE_ID.pattern.strip("^$"),
    experiment="[A-Za-z0-9_-]+",
    fold=r"\d+",


def _group_graph_is_acyclic(dag):
    """Whether the job graph with each job group contracted to one node has no cycle.

    Then no group can depend on itself (the path that leaves a group and comes back would
    be a cycle), for any grouping of connected components. Kahn's algorithm, O(jobs + edges).
    """
    node = lambda job: ("group", job.group) if job.group is not None else ("job", job)
    edges, indegree = defaultdict(set), defaultdict(int)
    for job, dependencies in list(dag.dependencies.items()):
        target = node(job)
        indegree[target] += 0
        for dependency in dependencies:
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


def _install_fast_group_checks():
    """Skip Snakemake's per-job group checks when the group graph has no cycle.

    Snakemake 9 validates groups by walking everything upstream of each grouped job, once
    per member of its group (DAG.validate_group, DAG._check_groups): quadratic in the cohort,
    minutes for 1,000 cases and most of an hour for 5,000 (benchmarks/bench_dag.py), even
    locally, where groups are inactive. Where the contracted graph has a cycle, Snakemake's
    own checks run unchanged and name the problem.
    """
    from snakemake.dag import DAG

    names = ("update_groups", "validate_group", "_check_groups")
    if getattr(DAG, "_segpipe_fast_group_checks", False) or not all(hasattr(DAG, n) for n in names):
        return
    update_groups, validate_group, check_groups = (getattr(DAG, n) for n in names)

    def update(self):
        self._segpipe_groups_acyclic = _group_graph_is_acyclic(self)
        try:
            update_groups(self)
        finally:
            self._segpipe_groups_acyclic = False

    def validate(self, group):
        if not self._segpipe_groups_acyclic:
            validate_group(self, group)

    def check(self):
        if not self._segpipe_groups_acyclic:
            check_groups(self)

    DAG.update_groups, DAG.validate_group, DAG._check_groups = update, validate, check
    DAG._segpipe_groups_acyclic = False
    DAG._segpipe_fast_group_checks = True


_install_fast_group_checks()


# Files of each case, looked up once (a pandas row lookup per job adds up for thousands).
_CASE_FILES = {
    case: [*channels, *([label] if label else [])]
    for case, label, *channels in zip(CASES.index, CASES["label"], *(CASES[c] for c in CHANNELS))
}


def case_files(wildcards):
    """Channel and label files of a case that exist (or that a demo rule makes).

    Missing user files are not declared, so the check rule fails for that case alone
    with a clear message instead of the whole DAG failing to build.
    """
    files = _CASE_FILES[wildcards.case]
    if DEMO:
        return files
    return [f for f in files if os.path.exists(f)]


def _prediction_chunks():
    """(experiment, [test cases]) of every prediction job that handles several cases."""
    chunks = []
    for experiment in SEGMENTATION_EXPERIMENTS:
        size = config["experiments"][experiment]["inference"]["cases_per_job"]
        if size > 1:
            chunks += [(experiment, TEST_CASES[i : i + size]) for i in range(0, len(TEST_CASES), size)]
    return chunks


def inference_settings(experiment):
    """The experiment's inference settings that change predictions (a params entry): not
    cases_per_job, which only decides how cases are spread over jobs."""
    settings = config["experiments"][experiment]["inference"]
    return {k: v for k, v in settings.items() if k != "cases_per_job"}


PREDICTION_CHUNKS = _prediction_chunks()
# Experiments predicted one case per job (the rule predict_case); "(?!)" matches nothing.
UNBATCHED_PATTERN = "|".join(re.escape(e) for e in EXPERIMENTS if e not in {e for e, _ in PREDICTION_CHUNKS}) or "(?!)"


def fold_checkpoints(wildcards):
    """best.pt of every fold ensembled at inference."""
    settings = config["experiments"][wildcards.experiment]
    folds = settings["inference"]["folds"] or settings["training"]["folds"]
    return [
        f"results/models/{wildcards.experiment}/fold_{k}/best.pt" for k in folds
    ]


def trained_fold_logs(wildcards):
    """log.tsv of every trained fold of an experiment."""
    folds = config["experiments"][wildcards.experiment]["training"]["folds"]
    return [f"results/models/{wildcards.experiment}/fold_{k}/log.tsv" for k in folds]


def experiment_settings(wildcards):
    """The experiment's config (a params entry, so a change reruns its jobs).

    Settings of other tasks are left out, and a segmentation experiment without init_from
    reads as it did before tasks existed, so adding them reruns nothing.
    """
    settings = dict(config["experiments"][wildcards.experiment])
    for task in ("landmarks", "denoise"):
        if settings["task"] != task:
            settings.pop(task)
    if settings["task"] == "segmentation" and not settings["init_from"]:
        for key in ("task", "init_from", "init_part"):
            settings.pop(key)
    return settings


def _predict_inputs():
    """Cases of the `predict` target: {case: [channel files]} and their file ending."""
    settings = config["predict"]
    if not settings["input"]:
        return {}, ".nii.gz"
    from pipeline.predict import collect_inputs, output_suffix

    try:
        cases = collect_inputs(settings["input"], len(CHANNELS))
    except PipelineError as err:
        raise WorkflowError(f"predict.input: {err}") from None
    return {c: [str(f) for f in files] for c, files in cases.items()}, output_suffix(next(iter(cases.values()))[0])


PREDICT_INPUTS, PREDICT_ENDING = _predict_inputs()


def predict_targets(wildcards):
    """Outputs of the `predict` target, or a clear error when it is not configured."""
    settings = config["predict"]
    if not settings["experiment"] or not settings["input"]:
        raise WorkflowError("the predict target needs predict.experiment and predict.input in the config")
    if settings["experiment"] not in config["experiments"]:
        raise WorkflowError(f"predict.experiment {settings['experiment']!r} is not one of the experiments {EXPERIMENTS}")
    return [f"results/predict/{settings['experiment']}/{c}{PREDICT_ENDING}" for c in PREDICT_INPUTS]


# Landmark detection and denoising experiments (workflow/rules/landmarks.smk, denoise.smk).
LANDMARK_EXPERIMENTS = [e for e in EXPERIMENTS if config["experiments"][e]["task"] == "landmarks"]
DENOISE_EXPERIMENTS = [e for e in EXPERIMENTS if config["experiments"][e]["task"] == "denoise"]
LANDMARK_TABLE = config["dataset"]["landmarks"]
PIPELINE_LANDMARKS = f"{PIPELINE}.landmarks"
PIPELINE_DENOISE = f"{PIPELINE}.denoise"


def landmark_table_input(wildcards):
    """The landmark table, for the train rule of a landmark experiment."""
    if config["experiments"][wildcards.experiment]["task"] != "landmarks":
        return []
    return [LANDMARK_TABLE]


def pretrained_checkpoint(wildcards):
    """best.pt of the lowest trained fold of the experiment named by init_from (or nothing)."""
    source = config["experiments"][wildcards.experiment]["init_from"]
    if not source:
        return []
    fold = min(config["experiments"][source]["training"]["folds"])
    return [f"results/models/{source}/fold_{fold}/best.pt"]


def training_settings(wildcards):
    """What training depends on (the train rule's params): the experiment's settings without
    its inference section, so changing how predictions are made retrains nothing."""
    settings = experiment_settings(wildcards)
    settings.pop("inference", None)
    return settings
