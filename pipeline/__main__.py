"""``python -m pipeline <stage> ...``: every workflow stage by hand.

Each stage reads the experiment config (``--config``, YAML or the resolved JSON the
workflow writes to ``results/config.json``) and explicit input/output paths. Errors on
user input print one clear message and exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pipeline import stages
from pipeline.config import load_config
from pipeline.cli import USER_ERRORS, add_common_options, report_error, start



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def stage(name: str, help_text: str, config: bool = True) -> argparse.ArgumentParser:
        return add_common_options(sub.add_parser(name, help=help_text, description=help_text), config)

    p = stage("demo-case", "generate one case of the demo dataset")
    p.add_argument("--case", required=True)
    p = stage("demo-manifest", "write the demo dataset's manifest")
    p.add_argument("--output", required=True)
    p = stage("check", "check one case (--case/--output) or, without them, every case of the dataset")
    p.add_argument("--case")
    p.add_argument("--output", help="check JSON of the case")
    p = stage("fingerprint", "dataset fingerprint from the check files of the training cases")
    p.add_argument("--checks", nargs="+", required=True)
    p.add_argument("--output", required=True)
    p = stage("plan", "plan (spacing, patch, normalisation, class weights) and CV splits")
    p.add_argument("--fingerprint", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--splits", required=True)
    p = stage("preprocess", "preprocess one case with the plan")
    p.add_argument("--case", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--output-dir", required=True)
    p = stage("train", "train one fold of one experiment (resumes from its checkpoint)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--splits", required=True)
    p.add_argument("--preprocessed", required=True, help="folder with one preprocessed folder per case")
    p.add_argument("--fold-dir", required=True)
    p.add_argument("--processes", type=int, default=1, help="data-parallel processes, one per GPU (the rule passes its gpu resource); >1 launches torchrun")
    p = stage("predict-case", "predict one preprocessed case with a fold ensemble")
    p.add_argument("--experiment", required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--case-dir", required=True, nargs="+", help="preprocessed case folder(s)")
    p.add_argument("--output", required=True, nargs="+", help="one output file per case folder")
    p = stage("predict", "predict new images with a trained model folder (no evaluation)", config=False)
    p.add_argument("--model", required=True, help="model folder, e.g. results/models/<experiment>")
    p.add_argument("--input", required=True, nargs="+", help="image files and/or folders of images")
    p.add_argument("--output", required=True, help="folder for the predictions")
    p.add_argument("--folds", type=int, nargs="+", help="folds to ensemble (default: all in the folder)")
    p = stage("evaluate", "score any predictions against references (files or folders paired by name), no config needed", config=False)
    p.add_argument("--reference", required=True, help="reference label map file or folder")
    p.add_argument("--prediction", required=True, help="predicted label map file or folder")
    p.add_argument("--output", required=True, help="per-case TSV; the summary goes to <stem>_summary.tsv")
    p.add_argument("--labels", nargs="+", default=[], metavar="VALUE=NAME", help="class names, e.g. 1=liver 2=tumour")
    p.add_argument("--dataset-json", help="take the class names from an nnU-Net/MSD dataset.json")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="evaluation conventions (keys of the evaluation: config section)")
    p.add_argument("--nnunet-compatible", action="store_true", help="also write <stem>_nnunet.tsv, Dice as nnU-Net's summary computes it")
    p = stage("evaluate-case", "per-class metrics of one predicted case")
    p.add_argument("--case", required=True)
    p.add_argument("--prediction", required=True)
    p.add_argument("--output", required=True)
    p = stage("aggregate", "per-case table and per-class summary of an experiment")
    p.add_argument("--tables", nargs="+", required=True)
    p.add_argument("--per-case", required=True)
    p.add_argument("--summary", required=True)
    p = stage("report", "the experiment's HTML report")
    p.add_argument("--experiment", required=True)
    p.add_argument("--per-case", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--logs", nargs="+", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--predictions", nargs="*", default=[], help="test predictions <case>.nii.gz, for the gallery of the worst cases")
    p.add_argument("--images", nargs="*", default=[], help="first-channel image per prediction, same order (default: from the dataset)")
    p.add_argument("--labels", nargs="*", default=[], help="reference label per prediction, same order (default: from the dataset)")
    p = stage("compare", "reports/index.html: experiments side by side, paired Wilcoxon tests, ranking")
    p.add_argument("--experiments", nargs="+", required=True)
    p.add_argument("--per-case", nargs="+", required=True, help="per_case.tsv of each experiment, same order")
    p.add_argument("--summaries", nargs="+", required=True, help="summary.tsv of each experiment, same order")
    p.add_argument("--output", required=True)
    return parser


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
        if args.stage == "evaluate":
            from pipeline.evaluation.__main__ import main as evaluate_main

            forwarded = [args.reference, args.prediction, args.output]
            forwarded += [f"--label={item}" for item in args.labels] + [f"--set={item}" for item in args.set]
            forwarded += (["--dataset-json", args.dataset_json] if args.dataset_json else []) + (["--nnunet-compatible"] if args.nnunet_compatible else [])
            return evaluate_main(forwarded)
        if args.stage == "predict":
            from pipeline.predict import predict_folder

            predict_folder(args.model, args.input, args.output, args.folds)
            return 0
        config = load_config(args.config)
        run(args, config)
    except USER_ERRORS as err:
        return report_error(args.stage, err)
    return 0


def run(args: argparse.Namespace, config: dict) -> None:
    """Dispatch ``args.stage`` to :mod:`pipeline.stages`."""
    s = args.stage
    if s == "demo-case":
        stages.make_demo_case(config, args.case)
    elif s == "demo-manifest":
        stages.make_demo_manifest(config, args.output)
    elif s == "check":
        if args.case:
            if not args.output:
                raise ValueError("check --case needs --output")
            stages.check(config, args.case, args.output)
        else:
            stages.check_dataset(config)
    elif s == "fingerprint":
        stages.fingerprint(config, args.checks, args.output)
    elif s == "plan":
        stages.plan(config, args.fingerprint, args.output, args.splits)
    elif s == "preprocess":
        stages.preprocess(config, args.case, args.plan, args.output_dir)
    elif s == "train":
        stages.train(config, args.experiment, args.fold, args.plan, args.splits, args.preprocessed, args.fold_dir)
    elif s == "predict-case":
        stages.predict(config, args.experiment, args.checkpoints, args.case_dir, args.output)
    elif s == "evaluate-case":
        stages.evaluate(config, args.case, args.prediction, args.output)
    elif s == "aggregate":
        stages.aggregate(config, args.tables, args.per_case, args.summary)
    elif s == "report":
        stages.report(config, args.experiment, args.per_case, args.summary, args.logs, args.plan, args.output, args.predictions, args.images, args.labels)
    elif s == "compare":
        stages.compare(config, args.experiments, args.per_case, args.summaries, args.output)


if __name__ == "__main__":
    sys.exit(main())
