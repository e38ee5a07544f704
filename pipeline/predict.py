"""Prediction on new, unlabelled images with a trained experiment's model folder.

A model folder (``results/models/<experiment>/``) holds everything needed: each
``fold_<k>/best.pt`` carries the network's architecture, its weights, the plan
(spacing, patch size, normalisation, label names) and the experiment's inference
settings, so the folder can be copied to another machine and used there::

    python -m pipeline predict --model results/models/unet_dicece --input scans/ --output out/

Inputs: one image file per case (single-channel models), or for multi-channel models the
nnU-Net naming ``<case>_0000.nii.gz``, ``<case>_0001.nii.gz`` ... in one folder. Outputs
are written in the input's format with the input's header (NIfTI in, NIfTI out).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.io.images import IMAGE_SUFFIXES, image_case_id
from pipeline.io.manifest import validate_case_id

log = logging.getLogger(__name__)
CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def fold_checkpoints(model_dir: str | os.PathLike[str], folds: Sequence[int] | None = None) -> list[Path]:
    """``fold_<k>/best.pt`` files of a model folder (all folds, or the given ones)."""
    root = Path(model_dir)
    if folds is None:
        found = sorted(root.glob("fold_*/best.pt"), key=lambda p: int(p.parent.name.split("_")[1]))
    else:
        found = [root / f"fold_{k}" / "best.pt" for k in folds]
        missing = [str(p) for p in found if not p.exists()]
        if missing:
            raise PipelineError(f"model folder {root} lacks the checkpoint(s) {missing}")
    if not found:
        raise PipelineError(f"model folder {root} holds no fold_<k>/best.pt; train the experiment first")
    return found


def output_suffix(path: str | os.PathLike[str]) -> str:
    """The image ending of ``path`` (``.nii.gz``, ``.nrrd`` ...): predictions keep the input's format."""
    return _suffix(Path(path))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), path.suffix)


def collect_inputs(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], channels: int) -> dict[str, list[Path]]:
    """``{case id: [channel files]}`` from image files and/or folders of new images.

    Raises:
        PipelineError: no images found, or a multi-channel case lacking a channel.
    """
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files: list[Path] = []
    for item in map(Path, sources):
        if item.is_file():
            files.append(item)
        elif item.is_dir():
            files += sorted(p for p in item.iterdir() if p.is_file() and _suffix(p) in IMAGE_SUFFIXES)
        else:
            raise PipelineError(f"input {item} does not exist")
    if not files:
        raise PipelineError(f"input {', '.join(map(str, sources))} holds no images (expected {', '.join(IMAGE_SUFFIXES)})")
    cases: dict[str, list[Path]] = {}
    if channels == 1:
        for f in files:
            stem = image_case_id(f)
            match = CHANNEL_SUFFIX.match(stem)
            case = match["case"] if match and match["channel"] == "0000" else stem
            cases[validate_case_id(case, where=f"{f}: ")] = [f]
        return cases
    grouped: dict[str, dict[int, Path]] = {}
    for f in files:
        match = CHANNEL_SUFFIX.match(image_case_id(f))
        if not match:
            raise PipelineError(f"{f}: a {channels}-channel model needs files named <case>_0000, <case>_0001, ... (nnU-Net naming)")
        grouped.setdefault(validate_case_id(match["case"], where=f"{f}: "), {})[int(match["channel"])] = f
    for case, found in grouped.items():
        if sorted(found) != list(range(channels)):
            raise PipelineError(f"case {case!r}: found channel(s) {sorted(found)}, the model needs channels {list(range(channels))}")
        cases[case] = [found[k] for k in range(channels)]
    return cases


def predict_folder(model_dir: str | os.PathLike[str], source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], folds: Sequence[int] | None = None, device: Any = None) -> list[Path]:
    """Preprocess and predict every case of ``source``; return the written files.

    Each case is preprocessed with the plan stored in the checkpoints into a temporary
    folder, predicted with the fold ensemble and written to ``output/<case><ending>``.
    A case whose output already exists is skipped, so an interrupted cohort resumes at
    the first unfinished case.
    """
    from pipeline.inference import predict_case
    from pipeline.preprocessing.preprocess import preprocess_case
    from pipeline.stages import decide_mirror, load_models
    from pipeline.training.checkpoint import load_checkpoint
    from pipeline.training.device import inference_dtype, select_device

    device = device or select_device()
    checkpoints = fold_checkpoints(model_dir, folds)
    experiment = load_checkpoint(checkpoints[0]).get("experiment", {})
    inference = {"overlap": 0.5, "mirror": False, "fast": True, "compile": False, **experiment.get("inference", {})}
    models, plan = load_models(checkpoints, device, inference["fast"], inference["compile"])
    inference["mirror"] = decide_mirror(inference["mirror"], checkpoints)
    amp = inference_dtype(device, inference["fast"])
    cases = collect_inputs(source, len(plan["channels"]))
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for case, files in cases.items():
        target = out_dir / f"{case}{output_suffix(files[0])}"
        if target.exists():
            log.info("%s exists, skipping", target)
            written.append(target)
            continue
        with tempfile.TemporaryDirectory(prefix=f"predict_{case}_") as tmp:
            preprocess_case(case, [str(f) for f in files], None, plan, tmp)
            predict_case(models, tmp, target, plan["patch_size"], inference, len(plan["labels"]), plan["batch_size"], device, amp)
        log.info("wrote %s", target)
        written.append(target)
    return written
