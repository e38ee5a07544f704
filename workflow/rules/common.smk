# Shared set-up: validate the config (defaults filled in), list cases and experiments.
import json
import os
import shlex
import sys
from pathlib import Path

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


def case_files(wildcards):
    """Channel and label files of a case that exist (or that a demo rule makes).

    Missing user files are not declared, so the check rule fails for that case alone
    with a clear message instead of the whole DAG failing to build.
    """
    row = CASES.loc[wildcards.case]
    files = [row[c] for c in CHANNELS] + ([row["label"]] if row["label"] else [])
    if DEMO:
        return files
    return [f for f in files if os.path.exists(f)]


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
    """The experiment's config (a params entry, so a change reruns its jobs)."""
    return config["experiments"][wildcards.experiment]


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
