"""The per-case QC table (``qc.tsv``) and the training reference of a model folder.

``qc.tsv`` has one row per flag (:class:`pipeline.qc.inputs.Flag`) with the columns
:data:`COLUMNS`; a case without flags gets one row with an empty ``flag`` (and empty channel,
axis, value and range) and the message ``no flag``, so every case checked is listed.
Numbers are written as found; ``axis`` is in ITK order (0 = x).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import write_tsv
from pipeline.errors import PipelineError, SettingError
from pipeline.io.check import load_case
from pipeline.io.images import read_image
from pipeline.qc.inputs import Flag, TrainingRanges, check_case, training_ranges

log = logging.getLogger(__name__)

COLUMNS = ["case", "flag", "channel", "axis", "value", "train_low", "train_high", "message"]
#: The message of the row of a case without flags.
NO_FLAG = "no flag"


def qc_frame(flags: Mapping[str, Sequence[Flag]]) -> Any:
    """The QC table as a pandas DataFrame: ``flags`` maps each case checked to its flags."""
    import pandas as pd

    rows = []
    for case, found in flags.items():
        if not found:
            rows.append({"case": case, "flag": "", "channel": "", "axis": "", "value": "", "train_low": "", "train_high": "", "message": NO_FLAG})
        for f in found:
            rows.append(
                {
                    "case": case,
                    "flag": f.name,
                    "channel": f.channel or "",
                    "axis": "" if f.axis is None else f.axis,
                    "value": f.value,
                    "train_low": f.low,
                    "train_high": f.high,
                    "message": f.message,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def write_qc_table(path: str | os.PathLike[str], flags: Mapping[str, Sequence[Flag]], merge: bool = False) -> None:
    """Write ``qc.tsv`` (see the module docstring) atomically.

    With ``merge``, the rows of an existing table for cases not in ``flags`` are kept (theirs
    first, in their order), under an exclusive lock on ``.<name>.lock`` beside it: the
    workflow's ``predict`` target predicts one case per job into one folder.
    """
    import pandas as pd

    if not merge:
        write_tsv(path, qc_frame(flags))
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        frame = qc_frame(flags)
        if target.is_file():
            try:
                old = pd.read_csv(target, sep="\t", dtype=str, keep_default_na=False)
            except (OSError, ValueError, pd.errors.ParserError) as err:
                log.warning("%s cannot be read (%s); written anew", target, err)
            else:
                if list(old.columns) == COLUMNS:
                    frame = pd.concat([old[~old["case"].isin(list(flags))], frame.astype(str)], ignore_index=True)
        write_tsv(target, frame)


def find_fingerprint(model_dir: str | os.PathLike[str], given: str | os.PathLike[str] | None = None) -> Path | None:
    """The training fingerprint of a model folder: ``given``, else ``<model>/fingerprint.json``,
    else the workflow's ``results/plans/fingerprint.json`` two folders up
    (``results/models/<experiment>``); None when there is none.

    Raises:
        SettingError: ``given`` does not exist.
    """
    if given is not None:
        if not Path(given).is_file():
            raise SettingError(
                f"fingerprint {given} does not exist; expected the fingerprint.json of the model's training data (results/plans/fingerprint.json)"
            )
        return Path(given)
    model = Path(model_dir)
    for candidate in (model / "fingerprint.json", model.resolve().parent.parent / "plans" / "fingerprint.json"):
        if candidate.is_file():
            return candidate
    return None


def load_ranges(fingerprint_path: str | os.PathLike[str]) -> TrainingRanges:
    """:func:`~pipeline.qc.inputs.training_ranges` of a fingerprint file, with the training
    cases' check files where the workflow put them (``results/cases/<case>/check.json`` beside
    ``results/plans/``), or a ``checks/<case>.json`` beside the fingerprint.

    Raises:
        SettingError: the fingerprint is not readable JSON or lacks an entry.
    """
    path = Path(fingerprint_path)
    try:
        fingerprint = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SettingError(f"fingerprint {path} cannot be read as JSON: {err}") from err
    if not isinstance(fingerprint, dict):
        raise SettingError(f"fingerprint {path} holds a {type(fingerprint).__name__}, expected a JSON object")
    checks = []
    for case in fingerprint.get("cases", []):
        for candidate in (path.parent.parent / "cases" / str(case) / "check.json", path.parent / "checks" / f"{case}.json"):
            if candidate.is_file():
                try:
                    checks.append(json.loads(candidate.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    log.warning("check file %s cannot be read; left out of the QC ranges", candidate)
                break
    if len(checks) < len(fingerprint.get("cases", [])):
        log.info("QC: %d of %d training check files found; orientation is checked only with them", len(checks), len(fingerprint.get("cases", [])))
    return training_ranges(fingerprint, checks)


def check_predicted_cases(
    cases: Mapping[str, Sequence[str | os.PathLike[str]]],
    predictions: Mapping[str, str | os.PathLike[str]],
    ranges: TrainingRanges,
    model_channels: int,
    dimensions: int,
    tolerance: float = 1e-3,
) -> dict[str, list[Flag]]:
    """The flags of each predicted case, its intensities taken inside its predicted foreground.

    Args:
        cases: case id -> its channel files (the model's order).
        predictions: case id -> its predicted label file (the image's grid); a prediction that
            cannot be read or lies on another grid leaves the nonzero voxels as the foreground.
        ranges: the training ranges; ``model_channels``, ``dimensions``: the model's.
    """
    out = {}
    for case, files in cases.items():
        image, _, geometry = load_case(case, [str(f) for f in files], None, dimensions, tolerance)
        foreground = None
        if case in predictions:
            try:
                labels, _ = read_image(predictions[case], case, dtype=None)
                foreground = np.asarray(labels) > 0 if labels.shape == image.shape[1:] else None
            except (PipelineError, OSError, RuntimeError, ValueError) as err:  # only the foreground changes
                log.warning("case %s: prediction %s not read for QC (%s); intensities taken over the nonzero voxels", case, predictions[case], err)
        out[case] = check_case(case, image, geometry, ranges, foreground, model_channels, "predicted foreground")
        del image
    return out


def warning_line(case: str, found: Sequence[Flag]) -> str:
    """One line for a flagged case: ``warning: case <id>: <finding>; <finding> ...``."""
    prefix = f"case {case}: "
    return "warning: " + prefix + "; ".join(f.message.removeprefix(prefix) for f in found)


def warn(flags: Mapping[str, Sequence[Flag]], stream: Any = None) -> None:
    """Print one :func:`warning_line` per flagged case to ``stream`` (default: stderr)."""
    stream = sys.stderr if stream is None else stream
    for case, found in flags.items():
        if found:
            print(warning_line(case, found), file=stream)
