"""Command line: ``python -m pipeline.evaluation REF PRED OUT.tsv [options]``.

REF and PRED are two label-map files or two folders of them (paired by case id). Labels come
from ``--dataset-json`` (nnU-Net v2 or MSD labels) or ``--label VALUE=NAME`` (repeat);
conventions from ``--set KEY=VALUE`` (repeat; keys as in the ``evaluation:`` config section).
A prediction must lie on its reference's voxel grid (size, spacing, origin, direction within
``--geometry-tolerance``); one stored in another axis order or orientation is reoriented.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from pipeline.errors import EvaluationError, PipelineError
from pipeline.io.images import GEOMETRY_TOLERANCE

from .conventions import Conventions
from .files import evaluate_paths


def _pairs(items: list[str], what: str) -> dict[str, str]:
    """``{KEY: VALUE}`` of ``KEY=VALUE`` items.

    Raises:
        EvaluationError: naming a malformed item.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EvaluationError(f"{what} must look like KEY=VALUE, got {item!r}.")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line parser."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", help="reference label map file or folder")
    parser.add_argument("prediction", help="predicted label map file or folder")
    parser.add_argument("output", help="per-case TSV; the summary goes to <stem>_summary.tsv")
    parser.add_argument("--dataset-json", help="dataset.json with 'labels' (nnU-Net v2 or MSD style)")
    parser.add_argument("--label", action="append", default=[], metavar="VALUE=NAME")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a convention")
    parser.add_argument("--nnunet-compatible", action="store_true", help="also write <stem>_nnunet.tsv")
    parser.add_argument(
        "--geometry-tolerance",
        type=float,
        default=GEOMETRY_TOLERANCE,
        help="as dataset.geometry_tolerance: relative for spacing, x largest spacing mm for the origin, absolute for direction cosines (default %(default)g)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate as the command line says; return 0. Errors on user input are raised (see
    ``evaluate_paths``); run as a script they print one line and exit with status 1."""
    args = build_parser().parse_args(argv)
    if not args.geometry_tolerance >= 0:  # also refuses NaN
        raise EvaluationError(f"--geometry-tolerance must be a number >= 0, got {args.geometry_tolerance}.")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pairs = _pairs(args.label, "--label")
    bad = [k for k in pairs if not k.lstrip("-").isdigit()]
    if bad:
        raise EvaluationError(f"--label values must be integers (VALUE=NAME, e.g. 1=liver), got {bad[0]!r} in {args.label}.")
    labels = {int(k): v for k, v in pairs.items()} or None
    try:
        settings = {k: yaml.safe_load(v) for k, v in _pairs(args.set, "--set").items()}
        conventions = Conventions.from_config(settings)
    except (ValueError, yaml.YAMLError) as err:  # the conventions' own checks name the key, the value and the choices
        raise EvaluationError(f"--set {' '.join(args.set)}: {err}") from err
    evaluate_paths(
        args.reference,
        args.prediction,
        args.output,
        labels=labels,
        dataset_json=args.dataset_json,
        conventions=conventions,
        nnunet_compatible=args.nnunet_compatible,
        geometry_tolerance=args.geometry_tolerance,
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (PipelineError, ValueError, OSError) as err:
        logging.getLogger("pipeline.evaluation").error("evaluation failed: %s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
