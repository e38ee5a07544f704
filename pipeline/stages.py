"""One function per workflow stage, called by the Snakemake rules through the CLI.

Each takes the validated config dict and explicit paths, so a failed cluster job can be
rerun by hand with the same command line (see ``python -m pipeline <stage> --help``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.atomic import write_json, write_tsv
from pipeline.config import label_names
from pipeline.errors import PipelineError
from pipeline.io.manifest import dataset_table

log = logging.getLogger(__name__)


def _read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def channel_names(config: Mapping[str, Any]) -> list[str]:
    """Names of the input channels, in order."""
    return [c["name"] for c in config["dataset"]["channels"]]


def case_row(config: Mapping[str, Any], case: str) -> pd.Series:
    """The manifest row of ``case`` (channel paths, label path, split)."""
    table = dataset_table(config)
    if case not in table.index:
        raise KeyError(f"case {case!r} is not in the dataset (known: {len(table)} cases, e.g. {list(table.index[:3])})")
    return table.loc[case]


def make_demo_case(config: Mapping[str, Any], case: str) -> None:
    """Generate one case of the configured demo dataset (``dataset.demo``: brain or nuclei)."""
    demo = config["dataset"]["demo"]
    row = case_row(config, case)
    if demo == "nuclei":
        from pipeline.demo import nuclei

        nuclei.make_case(case, row[nuclei.CHANNEL], row["label"], tile_size=config["demo"]["tile_size"])
        return
    if demo != "brain":
        raise ValueError(f"dataset.demo is {demo!r}; demo-case needs one of brain, nuclei")
    from pipeline.demo import brain

    index = int(case.rsplit("_", 1)[1])
    brain.make_case(index, row[brain.CHANNEL], row["label"], seed=config["demo"]["seed"], spacing_mm=config["demo"]["spacing_mm"])


def make_demo_manifest(config: Mapping[str, Any], output: str | os.PathLike[str]) -> None:
    """Write the demo manifest (the cases themselves come from :func:`make_demo_case`)."""
    demo, settings = config["dataset"]["demo"], config["demo"]
    if demo == "nuclei":
        from pipeline.demo import nuclei

        nuclei.write_manifest(output, nuclei.case_ids(settings["tile_size"], settings["test_cases"], settings["seed"]))
        return
    if demo != "brain":
        raise ValueError(f"dataset.demo is {demo!r}; demo-manifest needs one of brain, nuclei")
    from pipeline.demo import brain

    brain.write_manifest(output, brain.case_ids(settings["cases"], settings["test_cases"]))


def check(config: Mapping[str, Any], case: str, output: str | os.PathLike[str]) -> dict[str, Any]:
    """Run the data check of one case and write its summary JSON."""
    from pipeline.io.check import check_case

    row = case_row(config, case)
    result = check_case(
        case, [row[c] for c in channel_names(config)], row["label"] or None, label_names(config),
        config["dataset"]["dimensions"], config["dataset"]["geometry_tolerance"],
    )
    result["split"] = row["split"]
    if result.get("empty_label"):
        log.warning("case %s: the label holds no foreground voxels (flagged, not failed)", case)
    write_json(output, result)
    return result


def fingerprint(config: Mapping[str, Any], checks: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> dict[str, Any]:
    """Fingerprint of the training cases from their check files (test cases are skipped)."""
    from pipeline.preprocessing.fingerprint import compute_fingerprint

    results = [r for r in (_read_json(p) for p in checks) if r["split"] == "train"]
    data = compute_fingerprint(results, label_names(config), channel_names(config))
    write_json(output, data)
    return data


def plan(config: Mapping[str, Any], fingerprint_path: str | os.PathLike[str], plans_out: str | os.PathLike[str], splits_out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the plan and the cross-validation splits of the training cases."""
    from pipeline.preprocessing.plan import kfold_splits, make_plan

    fp = _read_json(fingerprint_path)
    result = make_plan(fp, config)
    write_json(plans_out, result)
    write_json(splits_out, kfold_splits(fp["cases"], config["plan"]["folds"], config["plan"]["seed"]))
    return result


def preprocess(config: Mapping[str, Any], case: str, plans: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
    """Preprocess one case into ``out_dir`` with the plan."""
    from pipeline.preprocessing.preprocess import preprocess_case

    row = case_row(config, case)
    preprocess_case(case, [row[c] for c in channel_names(config)], row["label"] or None, _read_json(plans), out_dir, config["dataset"]["geometry_tolerance"])


def train(config: Mapping[str, Any], experiment: str, fold: int, plans: str | os.PathLike[str], splits: str | os.PathLike[str], preprocessed: str | os.PathLike[str], fold_dir: str | os.PathLike[str]) -> None:
    """Train one fold of one experiment (resuming when a checkpoint exists)."""
    from pipeline.training.loop import train_fold

    folds = _read_json(splits)
    if fold >= len(folds):
        raise ValueError(f"fold {fold} does not exist: the splits file {splits} has {len(folds)} folds")
    task = config["experiments"][experiment]["task"]
    if task == "landmarks":
        from pipeline.landmarks.train import train_landmarks_fold

        train_landmarks_fold(experiment, config["experiments"][experiment], _read_json(plans), folds[fold], preprocessed, fold_dir, config)
        return
    if task == "denoise":
        from pipeline.denoise.train import train_denoise_fold

        train_denoise_fold(experiment, config["experiments"][experiment], _read_json(plans), folds[fold], preprocessed, fold_dir)
        return
    train_fold(experiment, config["experiments"][experiment], _read_json(plans), folds[fold], preprocessed, fold_dir)


def inference_folds(config: Mapping[str, Any], experiment: str) -> list[int]:
    """Folds ensembled at inference: ``inference.folds`` or every trained fold."""
    settings = config["experiments"][experiment]
    return list(settings["inference"]["folds"] or settings["training"]["folds"])


def load_models(checkpoints: Sequence[str | os.PathLike[str]], device: Any = None, fast: bool = False, compile: bool = False) -> tuple[list[Any], dict[str, Any]]:
    """Build the networks of ``checkpoints`` (eval mode) and return them with their plan.

    ``fast`` puts them in channels-last memory on CUDA; ``compile`` wraps them in
    ``torch.compile``.
    """
    import torch

    from pipeline.training.checkpoint import load_checkpoint, load_model_weights
    from pipeline.training.device import maybe_compile, memory_format
    from pipeline.training.loop import make_model

    device = torch.device(device or "cpu")
    models, plan_data = [], None
    for path in checkpoints:
        state = load_checkpoint(path)
        model = make_model(state["architecture"])
        load_model_weights(model, state, path, state["architecture"])
        layout = memory_format(state["architecture"]["spatial_dims"], device) if fast else torch.contiguous_format
        models.append(maybe_compile(model.to(device, memory_format=layout).eval(), compile))
        plan_data = plan_data or state["plan"]
    if plan_data is None:
        raise ValueError("no checkpoint given to predict with")
    return models, plan_data


def decide_mirror(setting: bool | str, checkpoints: Sequence[str | os.PathLike[str]]) -> bool:
    """``inference.mirror`` resolved with the validation scores stored in the checkpoints."""
    from pipeline.inference import resolve_mirror
    from pipeline.training.checkpoint import load_checkpoint

    if setting != "auto":
        return bool(setting)
    validations = [load_checkpoint(c).get("mirror_validation") for c in checkpoints]
    mirror = resolve_mirror(setting, validations)
    log.info("inference.mirror auto: %s (validation Dice without/with mirroring per fold: %s)", "mirroring" if mirror else "not mirroring",
             ", ".join(f"{v['dice']:.4f}/{v['dice_mirrored']:.4f}" if v else "not measured" for v in validations))
    return mirror


def predict(config: Mapping[str, Any], experiment: str, checkpoints: Sequence[str], case_dirs: Sequence[str | os.PathLike[str]], outputs: Sequence[str | os.PathLike[str]]) -> None:
    """Predict preprocessed cases with the fold ensemble, loaded once; write each on its
    original grid (``outputs[i]`` for ``case_dirs[i]``)."""
    from pipeline.inference import predict_case
    from pipeline.training.device import inference_dtype, select_device

    if len(case_dirs) != len(outputs):
        raise PipelineError(f"predict-case: {len(case_dirs)} case folder(s) but {len(outputs)} output(s); give one output per case folder")
    device = select_device()
    settings = config["experiments"][experiment]["inference"]
    models, plan_data = load_models(checkpoints, device, settings["fast"], settings["compile"])
    settings = {**settings, "mirror": decide_mirror(settings["mirror"], checkpoints)}
    for case_dir, output in zip(case_dirs, outputs):
        predict_case(models, case_dir, output, plan_data["patch_size"], settings, len(plan_data["labels"]), plan_data["batch_size"], device, inference_dtype(device, settings["fast"]))
        log.info("wrote %s", output)


def conventions(config: Mapping[str, Any]) -> Any:
    """The evaluation conventions of the config."""
    from pipeline.evaluation import Conventions

    return Conventions(**config["evaluation"])


def evaluate(config: Mapping[str, Any], case: str, prediction: str | os.PathLike[str], output: str | os.PathLike[str]) -> pd.DataFrame:
    """Per-class metrics of one predicted case against its reference label."""
    from pipeline.evaluation import evaluate_case
    from pipeline.io.images import read_image

    row = case_row(config, case)
    reference, ref_geo = read_image(row["label"], case, dtype=np.int64)
    predicted, pred_geo = read_image(prediction, case, dtype=np.int64)
    problem = ref_geo.mismatch(pred_geo, config["dataset"]["geometry_tolerance"])
    if problem:
        raise ValueError(f"case {case!r}: prediction {prediction} is not on the reference grid: {problem}")
    table = evaluate_case(reference, predicted, ref_geo.spacing_numpy, label_names(config), conventions(config), case_id=case)
    write_tsv(output, table)
    return table


def aggregate(config: Mapping[str, Any], tables: Sequence[str | os.PathLike[str]], per_case_out: str | os.PathLike[str], summary_out: str | os.PathLike[str]) -> pd.DataFrame:
    """Concatenate per-case tables and write the per-class summary."""
    from pipeline.evaluation import summarize

    per_case = pd.concat([pd.read_csv(t, sep="\t", keep_default_na=True) for t in tables], ignore_index=True)
    summary = summarize(per_case)
    write_tsv(per_case_out, per_case)
    write_tsv(summary_out, summary)
    return summary


def report(
    config: Mapping[str, Any], experiment: str, per_case: str, summary: str, logs: Sequence[str], plans: str, output: str | os.PathLike[str],
    predictions: Sequence[str] = (), images: Sequence[str] = (), labels: Sequence[str] = (),
) -> None:
    """Write the experiment's self-contained HTML report.

    ``predictions`` (``<case>.nii.gz`` files) with the test cases' first-channel ``images``
    and reference ``labels`` in the same order feed the gallery of the worst cases
    (``report.worst_cases``); without ``images``/``labels`` they come from the dataset table.
    """
    from pipeline.io.images import image_case_id
    from pipeline.reporting.overlays import CaseFiles
    from pipeline.reporting.report import write_experiment_report

    if (images or labels) and not len(images) == len(labels) == len(predictions):
        raise ValueError(f"report needs one image and one label per prediction, in the same order; got {len(predictions)} prediction(s), {len(images)} image(s), {len(labels)} label(s)")
    files = {}
    for i, prediction in enumerate(predictions):
        case = image_case_id(prediction)
        row = None if images else case_row(config, case)
        files[case] = CaseFiles(case, images[i] if images else row[channel_names(config)[0]], labels[i] if labels else row["label"], prediction)
    write_experiment_report(
        experiment=experiment,
        config=config,
        per_case=pd.read_csv(per_case, sep="\t", dtype={"case": str}),
        summary=pd.read_csv(summary, sep="\t"),
        training_logs={Path(p).parent.name: pd.read_csv(p, sep="\t") for p in logs},
        plan=_read_json(plans),
        conventions=conventions(config),
        output=output,
        case_files=files if predictions else None,
        worst_cases=config["report"]["worst_cases"],
    )


def compare(config: Mapping[str, Any], experiments: Sequence[str], per_case: Sequence[str], summaries: Sequence[str], output: str | os.PathLike[str]) -> pd.DataFrame:
    """Write ``reports/index.html``: experiments side by side, paired tests, ranking."""
    from pipeline.reporting.compare import write_comparison

    if not len(experiments) == len(per_case) == len(summaries):
        raise ValueError(f"compare needs one per-case table and one summary per experiment, in the same order; got {len(experiments)} experiment(s), {len(per_case)} per-case table(s), {len(summaries)} summary table(s)")
    return write_comparison(
        dataset=config["dataset"]["name"],
        per_case={e: pd.read_csv(p, sep="\t", dtype={"case": str}) for e, p in zip(experiments, per_case)},
        summaries={e: pd.read_csv(p, sep="\t") for e, p in zip(experiments, summaries)},
        output=output,
    )


def check_dataset(config: Mapping[str, Any]) -> None:
    """Check every case of the dataset; report every problem, raise if any case failed."""
    from pipeline.errors import CaseError, PipelineError
    from pipeline.io.check import check_case

    table = dataset_table(config)
    problems = []
    for case, row in table.iterrows():
        try:
            result = check_case(
                str(case), [row[c] for c in channel_names(config)], row["label"] or None, label_names(config),
                config["dataset"]["dimensions"], config["dataset"]["geometry_tolerance"],
            )
            if result.get("empty_label"):
                log.warning("case %s: empty label (flagged)", case)
        except CaseError as err:
            problems.append(str(err))
            log.error("%s", err)
    if problems:
        raise PipelineError(f"{len(problems)} of {len(table)} case(s) failed the check:\n  " + "\n  ".join(problems))
    log.info("all %d cases passed the check", len(table))
