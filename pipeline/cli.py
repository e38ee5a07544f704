"""What the ``python -m pipeline <stage>`` entry points share: the common options, logging,
the thread count, and turning an error on user input into one message and exit status 1
(no traceback). Only the project's own errors count as user errors; any other exception
is a bug and reaches the log with its traceback."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")

#: Errors that come from the user's input or files: reported in one line, exit status 1.
USER_ERRORS = (PipelineError,)


def add_common_options(parser: argparse.ArgumentParser, config: bool = True) -> argparse.ArgumentParser:
    """Add ``--config`` (unless ``config`` is false) and ``--threads`` to a stage's parser."""
    if config:
        parser.add_argument("--config", required=True, help="experiment config (YAML, or results/config.json)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all)")
    return parser


def start(args: argparse.Namespace) -> None:
    """Log to stderr with timestamps; limit torch to ``args.threads`` when given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def report_error(stage: str, err: BaseException) -> int:
    """Log and print ``err`` as the one message of a failed ``stage``; return exit status 1."""
    log.error("%s failed: %s", stage, err)
    print(f"error: {err}", file=sys.stderr)
    return 1
