"""``python -m pipeline <stage> ...``: every workflow stage by hand, for every task.

Each stage reads the experiment config (``--config``, YAML or the resolved JSON the
workflow writes to ``results/config.json``) and explicit input/output paths. Errors on
user input print one clear message and exit with status 1; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from pipeline.cli import USER_ERRORS, add_common_options, report_error, start

#: ``stage: (help, [(option, keyword arguments of add_argument)])``; ``--config`` is added
#: unless the stage runs without one (see :data:`WITHOUT_CONFIG`).
MANY = {"nargs": "+", "required": True}
STAGES: dict[str, tuple[str, list[tuple[str, dict]]]] = {
    "demo-case": ("generate one case of the demo dataset", [("--case", {"required": True})]),
    "demo-manifest": ("write the demo dataset's manifest", [("--output", {"required": True})]),
    "demo-landmarks": ("write the landmark table of the brain demo", [("--output", {"required": True})]),
    "check": (
        "check one case (--case/--output) or, without them, every case of the dataset",
        [
            ("--case", {}),
            ("--output", {"help": "check JSON of the case"}),
            ("--record-failure", {"action": "store_true", "help": "write a failed check into --output instead of failing"}),
        ],
    ),
    "test-outcomes": ("which test cases passed their check and which failed", [("--checks", {"nargs": "*", "default": []}), ("--output", {"required": True})]),
    "verdict": (
        "fail naming the test cases that failed their check (the run's last step)",
        [("--outcomes", {"required": True}), ("--output", {"required": True})],
    ),
    "fingerprint": ("dataset fingerprint from the check files of the training cases", [("--checks", MANY), ("--output", {"required": True})]),
    "plan": (
        "plan (spacing, patch, normalisation, class weights) and CV splits",
        [("--fingerprint", {"required": True}), ("--output", {"required": True}), ("--splits", {"required": True})],
    ),
    "preprocess": (
        "preprocess one case with the plan",
        [("--case", {"required": True}), ("--plan", {"required": True}), ("--output-dir", {"required": True}), ("--check", {"help": "the case's check JSON"})],
    ),
    "train": (
        "train one fold of one experiment of any task (resumes from its checkpoint)",
        [
            ("--experiment", {"required": True}),
            ("--fold", {"type": int, "required": True}),
            ("--plan", {"required": True}),
            ("--splits", {"required": True}),
            ("--preprocessed", {"required": True, "help": "folder with one preprocessed folder per case"}),
            ("--fold-dir", {"required": True}),
            (
                "--processes",
                {"type": int, "default": 1, "help": "data-parallel processes, one per GPU (the rule passes its gpu resource); >1 launches torchrun"},
            ),
        ],
    ),
    "predict-case": (
        "predict preprocessed cases with a fold ensemble (any task)",
        [
            ("--experiment", {"required": True}),
            ("--checkpoints", MANY),
            ("--case-dir", {**MANY, "help": "preprocessed case folder(s)"}),
            ("--output", {**MANY, "help": "one output file per case folder"}),
        ],
    ),
    "predict": (
        "predict new images with a trained model folder (no evaluation)",
        [
            ("--model", {"required": True, "help": "model folder, e.g. results/models/<experiment>"}),
            ("--input", {**MANY, "help": "image files and/or folders of images"}),
            ("--output", {"required": True, "help": "folder for the predictions"}),
            ("--folds", {"type": int, "nargs": "+", "help": "folds to ensemble (default: all in the folder)"}),
            (
                "--fingerprint",
                {
                    "help": "training fingerprint for the input checks in <output>/qc.tsv (default: <model>/fingerprint.json, else results/plans/fingerprint.json)"
                },
            ),
        ],
    ),
    "evaluate": (
        "score any predictions against references (files or folders paired by name), no config needed",
        [
            ("--reference", {"required": True, "help": "reference label map file or folder"}),
            ("--prediction", {"required": True, "help": "predicted label map file or folder"}),
            ("--output", {"required": True, "help": "per-case TSV; the summary goes to <stem>_summary.tsv"}),
            ("--labels", {"nargs": "+", "default": [], "metavar": "VALUE=NAME", "help": "class names, e.g. 1=liver 2=tumour"}),
            ("--dataset-json", {"help": "take the class names from an nnU-Net/MSD dataset.json"}),
            ("--set", {"nargs": "+", "default": [], "metavar": "KEY=VALUE", "help": "evaluation conventions (keys of the evaluation: config section)"}),
            ("--nnunet-compatible", {"action": "store_true", "help": "also write <stem>_nnunet.tsv, Dice as nnU-Net's summary computes it"}),
        ],
    ),
    "evaluate-case": (
        "metrics of one predicted case (any task)",
        [
            ("--experiment", {"required": True}),
            ("--case", {"required": True}),
            ("--prediction", {"required": True}),
            ("--output", {"required": True}),
        ],
    ),
    "aggregate": (
        "per-case table and summary of an experiment",
        [
            ("--experiment", {"required": True}),
            ("--tables", MANY),
            ("--per-case", {"required": True}),
            ("--summary", {"required": True}),
        ],
    ),
    "report": (
        "the experiment's HTML report",
        [
            ("--experiment", {"required": True}),
            ("--per-case", {"required": True}),
            ("--summary", {"required": True}),
            ("--logs", MANY),
            ("--plan", {"required": True}),
            ("--output", {"required": True}),
            ("--predictions", {"nargs": "*", "default": [], "help": "the test cases' prediction files (overlays of the worst cases)"}),
            ("--images", {"nargs": "*", "default": [], "help": "first-channel image per prediction, same order (default: from the dataset)"}),
            ("--labels", {"nargs": "*", "default": [], "help": "reference label per prediction, same order (default: from the dataset)"}),
            ("--outcomes", {"help": "which test cases passed their check (test-outcomes); the report lists those not scored"}),
        ],
    ),
    "compare": (
        "experiments of one task side by side (reports/index.html: paired Wilcoxon tests, ranking)",
        [
            ("--experiments", MANY),
            ("--per-case", {**MANY, "help": "per_case.tsv of each experiment, same order"}),
            ("--summaries", {**MANY, "help": "summary.tsv of each experiment, same order"}),
            ("--output", {"required": True}),
        ],
    ),
}
WITHOUT_CONFIG = ("predict", "evaluate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (help_text, options) in STAGES.items():
        p = add_common_options(sub.add_parser(name, help=help_text, description=help_text), config=name not in WITHOUT_CONFIG)
        for option, kwargs in options:
            p.add_argument(option, **kwargs)
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from pipeline.evaluation.__main__ import main as evaluate_main

    forwarded = [args.reference, args.prediction, args.output]
    forwarded += [f"--label={item}" for item in args.labels] + [f"--set={item}" for item in args.set]
    forwarded += (["--dataset-json", args.dataset_json] if args.dataset_json else []) + (["--nnunet-compatible"] if args.nnunet_compatible else [])
    return evaluate_main(forwarded)


def _predict(args: argparse.Namespace) -> int:
    from pipeline.tasks.segmentation.new_images import predict_folder

    predict_folder(args.model, args.input, args.output, args.folds, fingerprint=args.fingerprint)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage; return the exit status."""
    args = _parser().parse_args(argv)
    start(args)
    if args.stage == "train" and args.processes > 1 and "WORLD_SIZE" not in os.environ:
        from pipeline.training.distributed import relaunch_with_torchrun

        argv = list(sys.argv[1:] if argv is None else argv)
        index = argv.index("--processes")
        return relaunch_with_torchrun(args.processes, argv[:index] + argv[index + 2 :])
    try:
        if args.stage in WITHOUT_CONFIG:
            return {"evaluate": _evaluate, "predict": _predict}[args.stage](args)
        from pipeline.config import load_config

        run(args, load_config(args.config))
    except USER_ERRORS as err:
        return report_error(args.stage, err)
    return 0


def _check(config: dict, a: argparse.Namespace) -> None:
    from pipeline import stages
    from pipeline.errors import ConfigError

    if a.case and not a.output:
        raise ConfigError("check --case needs --output")
    stages.check(config, a.case, a.output, a.record_failure) if a.case else stages.check_dataset(config)


def _dispatch() -> dict[str, Callable[[dict, argparse.Namespace], object]]:
    from pipeline import outcomes
    from pipeline import stages as s

    return {
        "demo-case": lambda c, a: s.make_demo_case(c, a.case),
        "demo-manifest": lambda c, a: s.make_demo_manifest(c, a.output),
        "demo-landmarks": lambda c, a: s.make_demo_landmarks(c, a.output),
        "check": _check,
        "fingerprint": lambda c, a: s.fingerprint(c, a.checks, a.output),
        "plan": lambda c, a: s.plan(c, a.fingerprint, a.output, a.splits),
        "test-outcomes": lambda c, a: outcomes.test_outcomes(c, a.checks, a.output),
        "verdict": lambda c, a: outcomes.verdict(c, a.outcomes, a.output),
        "preprocess": lambda c, a: s.preprocess(c, a.case, a.plan, a.output_dir, a.check),
        "train": lambda c, a: s.train(c, a.experiment, a.fold, a.plan, a.splits, a.preprocessed, a.fold_dir),
        "predict-case": lambda c, a: s.predict(c, a.experiment, a.checkpoints, a.case_dir, a.output),
        "evaluate-case": lambda c, a: s.evaluate(c, a.experiment, a.case, a.prediction, a.output),
        "aggregate": lambda c, a: s.aggregate(c, a.experiment, a.tables, a.per_case, a.summary),
        "report": lambda c, a: s.report(c, a.experiment, a.per_case, a.summary, a.logs, a.plan, a.output, a.predictions, a.images, a.labels, a.outcomes),
        "compare": lambda c, a: s.compare(c, a.experiments, a.per_case, a.summaries, a.output),
    }


def run(args: argparse.Namespace, config: dict) -> None:
    """Dispatch ``args.stage`` to :mod:`pipeline.stages`."""
    _dispatch()[args.stage](config, args)


if __name__ == "__main__":
    sys.exit(main())
