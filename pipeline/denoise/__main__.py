"""``python -m pipeline.denoise <stage> ...``: evaluation and report of a denoising experiment.

Training runs through ``python -m pipeline train`` (``task: denoise`` selects the denoising
loop). Errors on user input print one message and exit with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.atomic import write_tsv
from pipeline.config import load_config
from pipeline.cli import USER_ERRORS, add_common_options, report_error, start

log = logging.getLogger("pipeline")


def evaluate(config: Mapping[str, Any], experiment: str, checkpoints: Sequence[str], case_dirs: Sequence[str], per_case_out: str, summary_out: str, figure_out: str | None = None) -> pd.DataFrame:
    """Score the denoising of every test case; write the per-case and summary tables."""
    from pipeline.denoise.evaluate import evaluate_case, example_figure, summarize
    from pipeline.landmarks.stages import experiment_settings
    from pipeline.stages import load_models
    from pipeline.training.device import select_device

    settings = experiment_settings(config, experiment, "denoise")
    device = select_device()
    models, plan = load_models(checkpoints, device)
    rows = []
    for i, folder in enumerate(case_dirs):
        row, noisy, out = evaluate_case(models, folder, settings["denoise"], plan["patch_size"], settings["inference"]["overlap"], device)
        rows.append(row)
        if i == 0 and figure_out:
            import base64

            import numpy as np

            from pipeline.atomic import atomic_path

            uri = example_figure(row["case"], np.load(f"{folder}/image.npy"), noisy, out)
            with atomic_path(figure_out, suffix=".png") as tmp:
                tmp.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
        log.info("%s %s: PSNR %.2f -> %.2f dB, SSIM %.3f -> %.3f", experiment, row["case"], row["psnr_corrupted"], row["psnr"], row["ssim_corrupted"], row["ssim"])
    per_case = pd.DataFrame(rows)
    summary = summarize(per_case)
    write_tsv(per_case_out, per_case)
    write_tsv(summary_out, summary)
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.denoise", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    p = sub.add_parser("evaluate", help="PSNR/SSIM of the denoised test cases")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--case-dirs", nargs="+", required=True, help="preprocessed folders of the test cases")
    p.add_argument("--per-case", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--figure", help="also write an example figure (PNG) for the report")
    p = sub.add_parser("report", help="the denoising experiment's HTML report")
    p.add_argument("--per-case", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--logs", nargs="+", required=True)
    p.add_argument("--figure", help="example figure (PNG) written by evaluate")
    p.add_argument("--output", required=True)
    for p in sub.choices.values():
        add_common_options(p).add_argument("--experiment", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage; return the exit status."""
    args = _parser().parse_args(argv)
    start(args)
    try:
        config = load_config(args.config)
        if args.stage == "evaluate":
            evaluate(config, args.experiment, args.checkpoints, args.case_dirs, args.per_case, args.summary, args.figure)
        else:
            from pipeline.denoise.evaluate import write_denoise_report
            from pipeline.landmarks.report import read_logs
            from pipeline.landmarks.stages import experiment_settings

            experiment_settings(config, args.experiment, "denoise")
            import base64
            from pathlib import Path

            figure = "data:image/png;base64," + base64.b64encode(Path(args.figure).read_bytes()).decode("ascii") if args.figure else None
            write_denoise_report(
                args.experiment, config, pd.read_csv(args.per_case, sep="\t", dtype={"case": str}), pd.read_csv(args.summary, sep="\t"),
                read_logs(args.logs), figure, args.output,
            )
    except USER_ERRORS as err:
        return report_error(args.stage, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
