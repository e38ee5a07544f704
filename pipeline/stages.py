"""One function per workflow stage, called by the Snakemake rules through the CLI.

Each takes the validated config dict and explicit paths, so a failed cluster job can be
rerun by hand with the same command line (see ``python -m pipeline <stage> --help``).
The data stages are the same for every task; from training on, a stage finds the
experiment's task in :data:`pipeline.tasks.TASKS` and calls it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.atomic import write_json, write_tsv
from pipeline.errors import CaseError, ConfigError, FailedCasesError, PipelineError
from pipeline.io.dataset import case_row, channel_names, dataset_table, demo_of, label_names
from pipeline.outcomes import failed_checks
from pipeline.tasks import task_of

log = logging.getLogger(__name__)


def _read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def make_demo_case(config: Mapping[str, Any], case: str) -> None:
    """Generate one case of the configured demo dataset (``dataset.demo``)."""
    demo_of(config).make_case(config, case, case_row(config, case))


def make_demo_manifest(config: Mapping[str, Any], output: str | os.PathLike[str]) -> None:
    """Write the demo manifest (the cases themselves come from :func:`make_demo_case`)."""
    demo_of(config).write_manifest(config, output)


def make_demo_landmarks(config: Mapping[str, Any], output: str | os.PathLike[str]) -> None:
    """Write the landmark table of the brain demo."""
    from pipeline.tasks.landmarks.demo import write_demo_landmarks

    write_demo_landmarks(config, output)


def _check_row(config: Mapping[str, Any], case: str, row: pd.Series) -> dict[str, Any]:
    from pipeline.io.check import check_case

    dataset = config["dataset"]
    result = check_case(
        case, [row[c] for c in channel_names(config)], row["label"] or None, label_names(config), dataset["dimensions"], dataset["geometry_tolerance"]
    )
    if result.get("empty_label"):
        log.warning("case %s: the label holds no foreground voxels (flagged, not failed)", case)
    return result


def check(config: Mapping[str, Any], case: str, output: str | os.PathLike[str], record_failure: bool = False) -> dict[str, Any]:
    """Run the data check of one case and write its summary JSON (with ``split`` and ``labelled``).

    With ``record_failure`` (the workflow's check_case), a case that fails is written as
    ``{"case", "split", "failed": message}`` instead of raising, so that the other cases'
    scores and reports are still made (:mod:`pipeline.outcomes` lists it; the fingerprint
    refuses a failed training case, the run's verdict a failed test case).

    Raises:
        CaseError: a file is missing, unreadable or inconsistent, its geometry unusable, or
            the label the dataset names for the case is missing or unreadable (without
            ``record_failure``).
    """
    row = case_row(config, case)
    try:
        result = {**_check_row(config, case, row), "split": row["split"]}
    except CaseError as err:
        if not record_failure:
            raise
        log.error("%s", err)
        result = {"case": case, "split": row["split"], "failed": str(err)}
        write_json(output, result)
        return result
    if not result["labelled"]:
        log.warning("case %s (%s): no label in the dataset table; it is predicted but cannot be scored", case, row["split"])
    write_json(output, result)
    return result


def check_dataset(config: Mapping[str, Any]) -> None:
    """Check every case of the dataset; report every problem, raise if any case failed."""
    table = dataset_table(config)
    problems = []
    for case, row in table.iterrows():
        try:
            _check_row(config, str(case), row)
        except CaseError as err:
            problems.append(str(err))
            log.error("%s", err)
    if problems:
        raise PipelineError(f"{len(problems)} of {len(table)} case(s) failed the check:\n  " + "\n  ".join(problems))
    log.info("all %d cases passed the check", len(table))


def fingerprint(config: Mapping[str, Any], checks: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> dict[str, Any]:
    """Fingerprint of the training cases from their check files.

    Only training cases feed the statistics; test cases' check files, where given (by hand;
    the workflow gives none, so that no test case can change the plan), feed only the
    dataset-level findings on the labels (the fingerprint's ``warnings``). The report adds
    the findings that need the test references (a class only in test labels).

    Raises:
        FailedCasesError: training cases failed their check (each is listed).
    """
    from pipeline.preprocessing.fingerprint import compute_fingerprint

    results = [_read_json(p) for p in checks]
    failed = failed_checks([r for r in results if r["split"] == "train"])
    if failed:
        lines = "\n  ".join(f"{case}: {message}" for case, message in failed.items())
        raise FailedCasesError(f"{len(failed)} training case(s) failed their check; the plan needs every training case:\n  {lines}")
    test = [r for r in results if r["split"] == "test"]
    data = compute_fingerprint([r for r in results if r["split"] == "train"], label_names(config), channel_names(config), test_checks=test)
    write_json(output, data)
    return data


def plan(
    config: Mapping[str, Any], fingerprint_path: str | os.PathLike[str], plans_out: str | os.PathLike[str], splits_out: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write the plan and the cross-validation splits of the training cases."""
    from pipeline.preprocessing.plan import kfold_splits, make_plan

    fp = _read_json(fingerprint_path)
    result = make_plan(fp, config)
    write_json(plans_out, result)
    write_json(splits_out, kfold_splits(fp["cases"], config["plan"]["folds"], config["plan"]["seed"]))
    return result


def preprocess(
    config: Mapping[str, Any], case: str, plans: str | os.PathLike[str], out_dir: str | os.PathLike[str], check: str | os.PathLike[str] | None = None
) -> None:
    """Preprocess one case into ``out_dir`` with the plan.

    Raises:
        CaseError: ``check`` (the case's check JSON) records a failure.
    """
    from pipeline.preprocessing.preprocess import preprocess_case

    if check is not None and (failed := failed_checks([_read_json(check)])):
        raise CaseError(case, check, f"the case failed its check, so it cannot be preprocessed: {failed[case]}")
    row = case_row(config, case)
    preprocess_case(case, [row[c] for c in channel_names(config)], row["label"] or None, _read_json(plans), out_dir, config["dataset"]["geometry_tolerance"])


def train(
    config: Mapping[str, Any],
    experiment: str,
    fold: int,
    plans: str | os.PathLike[str],
    splits: str | os.PathLike[str],
    preprocessed: str | os.PathLike[str],
    fold_dir: str | os.PathLike[str],
) -> pd.DataFrame:
    """Train one fold of one experiment of any task (resuming when a checkpoint exists)."""
    from pipeline.tasks import train_fold

    folds = _read_json(splits)
    if not 0 <= fold < len(folds):
        raise ConfigError(f"fold {fold} does not exist: the splits file {splits} has {len(folds)} folds (0..{len(folds) - 1})")
    return train_fold(config, experiment, _read_json(plans), folds[fold], preprocessed, fold_dir)


def predict(
    config: Mapping[str, Any],
    experiment: str,
    checkpoints: Sequence[str],
    case_dirs: Sequence[str | os.PathLike[str]],
    outputs: Sequence[str | os.PathLike[str]],
) -> None:
    """Predict preprocessed cases with the experiment's fold ensemble, loaded once (``outputs[i]`` for ``case_dirs[i]``)."""
    if len(case_dirs) != len(outputs):
        raise ConfigError(f"predict-case: {len(case_dirs)} case folder(s) but {len(outputs)} output(s); give one output per case folder")
    task_of(config, experiment).predict_cases(config, experiment, checkpoints, case_dirs, outputs)


def evaluate(config: Mapping[str, Any], experiment: str, case: str, prediction: str | os.PathLike[str], output: str | os.PathLike[str]) -> pd.DataFrame:
    """The experiment task's metrics of one predicted case; writes the per-case table."""
    return task_of(config, experiment).evaluate_case(config, experiment, case, prediction, output)


def aggregate(
    config: Mapping[str, Any],
    experiment: str,
    tables: Sequence[str | os.PathLike[str]],
    per_case_out: str | os.PathLike[str],
    summary_out: str | os.PathLike[str],
) -> pd.DataFrame:
    """Concatenate per-case tables and write the task's summary of the experiment.

    Raises:
        FailedCasesError: no tables (every test case failed its check or has no reference).
    """
    if not tables:
        raise FailedCasesError(
            f"experiment {experiment}: no test case could be scored - each failed its check or has no reference (results/cases/test_outcomes.json)"
        )
    per_case = pd.concat([pd.read_csv(t, sep="\t", dtype={"case": str}) for t in tables], ignore_index=True)
    summary = task_of(config, experiment).summarize(per_case)
    write_tsv(per_case_out, per_case)
    write_tsv(summary_out, summary)
    return summary


def report(
    config: Mapping[str, Any],
    experiment: str,
    per_case: str,
    summary: str,
    logs: Sequence[str],
    plans: str,
    output: str | os.PathLike[str],
    predictions: Sequence[str] = (),
    images: Sequence[str] = (),
    labels: Sequence[str] = (),
    outcomes: str | os.PathLike[str] | None = None,
) -> None:
    """Write the experiment's self-contained HTML report.

    ``predictions``: the test cases' prediction files; ``images`` and ``labels`` (optional,
    one per prediction, same order): their first-channel images and references, by default
    taken from the dataset table. ``outcomes`` (:func:`pipeline.outcomes.test_outcomes`): the report names
    every test case of the dataset that is not scored, and why.
    """
    from pipeline.tasks.base import ReportInputs

    if (images and len(images) != len(predictions)) or (labels and len(labels) != len(predictions)):
        raise ConfigError(
            f"report needs one image and one label per prediction, in the same order; got {len(predictions)} prediction(s), "
            f"{len(images)} image(s), {len(labels)} label(s)"
        )
    failed = _read_json(outcomes)["failed"] if outcomes else {}
    scored = set(pd.read_csv(per_case, sep="\t", dtype={"case": str}, usecols=["case"])["case"])
    table = dataset_table(config)
    unscored = {
        str(c): failed.get(str(c), "no reference to score it against (unlabelled): predicted only")
        for c in table.index[table["split"] == "test"]
        if str(c) not in scored
    }
    notes = []
    if not (table["split"] == "test").any():
        from pipeline.workflow.cross_validation import evaluation_note

        trained = config["experiments"][experiment]["training"]["folds"]
        notes.append(evaluation_note(len(scored), int((table["split"] == "train").sum()), trained, config["plan"]["folds"]))
    inputs = ReportInputs(per_case, summary, logs, _read_json(plans), output, predictions, images, labels, unscored, notes)
    task_of(config, experiment).report(config, experiment, inputs)


def compare(
    config: Mapping[str, Any], experiments: Sequence[str], per_case: Sequence[str], summaries: Sequence[str], output: str | os.PathLike[str]
) -> pd.DataFrame:
    """Compare experiments of one task on one page (``reports/index.html`` for segmentation)."""
    if not experiments or not len(experiments) == len(per_case) == len(summaries):
        raise ConfigError(
            f"compare needs one per-case table and one summary per experiment, in the same order; got {len(experiments)} experiment(s), "
            f"{len(per_case)} per-case table(s), {len(summaries)} summary table(s)"
        )
    tasks = {task_of(config, e).name for e in experiments}
    if len(tasks) != 1:
        raise ConfigError(f"compare takes experiments of one task; {list(experiments)} are of the tasks {sorted(tasks)}")
    task = task_of(config, experiments[0])
    if task.compare is None:
        raise ConfigError(f"task {task.name} has no comparison page")
    return task.compare(config, experiments, per_case, summaries, output)
