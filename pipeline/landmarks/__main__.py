"""``python -m pipeline.landmarks <stage> ...``: the landmark stages by hand.

Training runs through ``python -m pipeline train`` like every task (the experiment's
``task: landmarks`` selects the landmark loop). Errors on user input print one message and
exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline.config import load_config
from pipeline.cli import USER_ERRORS, add_common_options, report_error, start
from pipeline.landmarks import stages



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.landmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def stage(name: str, help_text: str) -> argparse.ArgumentParser:
        return add_common_options(sub.add_parser(name, help=help_text, description=help_text))

    p = stage("demo-table", "write the landmark table of the brain demo")
    p.add_argument("--output", required=True)
    p = stage("predict-case", "predict the landmarks of one preprocessed case (TSV, mm)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--case-dir", required=True)
    p.add_argument("--output", required=True)
    p = stage("evaluate", "radial errors of predicted test cases: per-case table and summary")
    p.add_argument("--experiment", required=True)
    p.add_argument("--predictions", nargs="+", required=True)
    p.add_argument("--per-case", required=True)
    p.add_argument("--summary", required=True)
    p = stage("report", "the landmark experiment's HTML report")
    p.add_argument("--experiment", required=True)
    p.add_argument("--per-case", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--logs", nargs="+", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--cases", nargs="*", default=[], help="test cases to draw overlays of")
    p.add_argument("--images", nargs="*", default=[], help="first-channel image per case, same order")
    p = stage("compare", "compare landmark experiments (TSV and HTML)")
    p.add_argument("--experiments", nargs="+", required=True)
    p.add_argument("--per-case", nargs="+", required=True)
    p.add_argument("--summaries", nargs="+", required=True)
    p.add_argument("--output-html", required=True)
    p.add_argument("--output-tsv", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage; return the exit status."""
    args = _parser().parse_args(argv)
    start(args)
    try:
        config = load_config(args.config)
        if args.stage == "demo-table":
            stages.demo_table(config, args.output)
        elif args.stage == "predict-case":
            stages.predict_case(config, args.experiment, args.checkpoints, args.case_dir, args.output)
        elif args.stage == "evaluate":
            stages.evaluate(config, args.experiment, args.predictions, args.per_case, args.summary)
        elif args.stage == "report":
            stages.report(config, args.experiment, args.per_case, args.summary, args.logs, args.output, args.images, args.cases)
        elif args.stage == "compare":
            stages.compare(config, args.experiments, args.per_case, args.summaries, args.output_html, args.output_tsv)
    except USER_ERRORS as err:
        return report_error(args.stage, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
