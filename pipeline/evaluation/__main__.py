"""Command line: ``python -m pipeline.evaluation REF PRED OUT.tsv [options]``.

REF and PRED are two label-map files or two folders of them (paired by case id). Labels come
from ``--dataset-json`` (nnU-Net v2) or ``--label VALUE=NAME`` (repeat); conventions from
``--set KEY=VALUE`` (repeat; keys as in the ``evaluation:`` config section).
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from .conventions import Conventions
from .files import evaluate_paths


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} must look like KEY=VALUE, got {item!r}.")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", help="reference label map file or folder")
    parser.add_argument("prediction", help="predicted label map file or folder")
    parser.add_argument("output", help="per-case TSV; the summary goes to <stem>_summary.tsv")
    parser.add_argument("--dataset-json", help="nnU-Net v2 dataset.json with a 'labels' mapping")
    parser.add_argument("--label", action="append", default=[], metavar="VALUE=NAME")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a convention")
    parser.add_argument("--nnunet-compatible", action="store_true", help="also write <stem>_nnunet.tsv")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        labels = {int(k): v for k, v in _pairs(args.label, "--label").items()} or None
    except ValueError as err:
        raise SystemExit(f"--label values must be integers: {err}") from err
    settings = {k: yaml.safe_load(v) for k, v in _pairs(args.set, "--set").items()}
    evaluate_paths(args.reference, args.prediction, args.output, labels=labels,
                   dataset_json=args.dataset_json, conventions=Conventions.from_config(settings),
                   nnunet_compatible=args.nnunet_compatible)
    return 0


if __name__ == "__main__":
    sys.exit(main())
