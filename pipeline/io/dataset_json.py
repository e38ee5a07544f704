"""Datasets in the nnU-Net v2 raw layout (the Medical Segmentation Decathlon as nnU-Net converts it).

A dataset folder holds ``dataset.json`` and::

    imagesTr/{case}_{channel:04d}{file_ending}   one file per case and input channel
    labelsTr/{case}{file_ending}                 its label
    imagesTs/{case}_{channel:04d}{file_ending}   test images (unlabelled in nnU-Net)
    labelsTs/{case}{file_ending}                 optional: their labels

``dataset.json`` names the channels (``channel_names``, ``{"0": "CT"}``; MSD's
``modality`` is read the same way), the labels (``labels``, nnU-Net v2's
``{"background": 0, "tumour": 1}`` or MSD's ``{"0": "background"}``) and the
``file_ending``. nnU-Net v2's optional ``dataset`` entry (case -> ``images``/``label``
paths, relative to the dataset folder) replaces the folder scan of imagesTr.

Test cases, which this pipeline evaluates and so needs labelled:
- the cases named in an optional ``test`` list of dataset.json (case ids, or file names
  as in MSD) are held out; they may come from imagesTr/labelsTr or imagesTs/labelsTs;
- when a ``labelsTs`` folder exists, every case of imagesTs is a test case, labelled from
  there (a missing label file fails that case's check);
- without ``labelsTs``, imagesTs cases not in ``test`` are ignored (nothing to evaluate).
Every other case of imagesTr is a training case.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import ConfigError
from pipeline.io.cases import CHANNEL_FILE, ManifestError, validate_case_id

log = logging.getLogger(__name__)

MRI_NAMES = re.compile(r"mr|t1|t2|flair|adc|dwi|pd|swi|bold|dce|perfusion", re.IGNORECASE)
MICROSCOPY_NAMES = re.compile(r"micro|fluo|dapi|nucle|rgb|bright|phase", re.IGNORECASE)


def load_dataset_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``dataset.json``; check that it names channels, labels and the file ending.

    Raises:
        ManifestError: the file is missing, not JSON, or lacks a required entry.
    """
    p = Path(path)
    if not p.is_file():
        problem = "is a folder, not a JSON file" if p.is_dir() else "does not exist"
        raise ManifestError(f"dataset.json {p} {problem} (looked for {os.path.abspath(p)}; dataset.dataset_json names it)")
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"dataset.json {p} is not valid JSON: {err}") from err
    if not isinstance(info, dict):
        raise ManifestError(f"dataset.json {p} must hold a JSON object, got {type(info).__name__}")
    if "channel_names" not in info and "modality" in info:
        info["channel_names"] = info["modality"]
    missing = [k for k in ("channel_names", "labels", "file_ending") if k not in info]
    if missing == ["file_ending"] and "training" in info:
        raise ManifestError(
            f"dataset.json {p} is in the original MSD layout (4D images listed under 'training'); "
            "convert it to the nnU-Net v2 layout (nnUNetv2_convert_MSD_dataset) with one file per channel"
        )
    if missing:
        raise ManifestError(f"dataset.json {p} lacks {missing}; expected 'channel_names', 'labels' and 'file_ending' (nnU-Net v2 layout)")
    for key in ("channel_names", "labels"):
        if not isinstance(info[key], dict) or not info[key]:
            raise ManifestError(f"dataset.json {p}: {key!r} must be a non-empty object, got {info[key]!r}")
    return info


def channel_names(info: Mapping[str, Any], path: object = "dataset.json") -> list[str]:
    """Channel names in channel order, made valid column names (``[A-Za-z0-9_]``) and unique."""
    raw = info["channel_names"]
    try:
        order = sorted(raw, key=int)
    except ValueError as err:
        raise ManifestError(f"dataset.json {path}: channel_names keys must be channel numbers 0, 1, ..., got {list(raw)}") from err
    if [int(k) for k in order] != list(range(len(order))):
        raise ManifestError(f"dataset.json {path}: channel_names keys must be 0..{len(order) - 1}, got {order}")
    names: list[str] = []
    for index, key in enumerate(order):
        name = re.sub(r"[^A-Za-z0-9_]", "_", str(raw[key]).strip()) or f"channel_{index}"
        names.append(f"{name}_{index}" if name in names else name)
    return names


def channel_modality(name: str) -> str:
    """The ``dataset.channels`` modality of a dataset.json channel name (CT -> ct, ...)."""
    if name.strip().lower() == "ct":
        return "ct"
    if MRI_NAMES.search(name):
        return "mri"
    return "microscopy" if MICROSCOPY_NAMES.search(name) else "other"


def label_map(info: Mapping[str, Any], path: object = "dataset.json") -> dict[str, str]:
    """``{"0": name, ...}`` from nnU-Net v2 (name -> value) or MSD (value -> name) labels."""
    raw = info["labels"]
    if all(str(k).isdigit() for k in raw):
        pairs = {int(k): str(v) for k, v in raw.items()}
    else:
        regions = [k for k, v in raw.items() if not isinstance(v, int)]
        if regions:
            raise ManifestError(
                f"dataset.json {path}: label(s) {regions} are regions (lists of values) or not integers; only one integer value per class is supported"
            )
        pairs = {int(v): str(k) for k, v in raw.items()}
    if 0 not in pairs or min(pairs) < 0:
        raise ManifestError(f"dataset.json {path}: label values must be integers >= 0 and include 0 (the background), got {sorted(pairs)}")
    return {str(k): re.sub(r"[^A-Za-z0-9_ -]", "_", pairs[k]).strip() or f"class_{k}" for k in sorted(pairs)}


def fill_config(config: MutableMapping[str, Any]) -> None:
    """Before schema validation: take ``dataset.channels``/``labels`` from dataset.json when left out.

    Does nothing unless ``dataset.dataset_json`` is set and ``dataset.demo`` is not.
    """
    dataset = config.get("dataset")
    if not isinstance(dataset, MutableMapping) or not dataset.get("dataset_json") or dataset.get("demo"):
        return
    if dataset.get("manifest"):
        raise ConfigError("dataset.manifest and dataset.dataset_json are both set; name one of them")
    path = dataset["dataset_json"]
    info = load_dataset_json(path)
    if "channels" not in dataset:
        raw = [str(info["channel_names"][k]) for k in sorted(info["channel_names"], key=int)]
        dataset["channels"] = [{"name": name, "modality": channel_modality(value)} for name, value in zip(channel_names(info, path), raw)]
    if "labels" not in dataset:
        dataset["labels"] = label_map(info, path)


def check_config(config: Mapping[str, Any]) -> None:
    """After validation: ``dataset.channels``/``labels`` must agree with dataset.json.

    Channel names are compared in order and case-insensitively (``t2`` matches ``T2``);
    labels must map the same values to the same names.

    Raises:
        ConfigError: naming both lists and how to fix the config.
    """
    dataset = config["dataset"]
    if not dataset.get("dataset_json") or dataset.get("demo"):
        return
    path = dataset["dataset_json"]
    info = load_dataset_json(path)
    expected = channel_names(info, path)
    given = [c["name"] for c in dataset["channels"]]
    if [g.lower() for g in given] != [e.lower() for e in expected]:
        raise ConfigError(
            f"dataset.channels {given} do not match channel_names {expected} of dataset.json {path} "
            f"(files _0000.._{len(expected) - 1:04d}, in that order); leave dataset.channels out to take them from dataset.json, or name the same channels in the same order"
        )
    labels = label_map(info, path)
    ours = {str(k): str(v) for k, v in dataset["labels"].items()}
    if {k: v.lower() for k, v in ours.items()} != {k: v.lower() for k, v in labels.items()}:
        raise ConfigError(
            f"dataset.labels {ours} do not match the labels {labels} of dataset.json {path}; leave dataset.labels out to take them from dataset.json, or give the same values and names"
        )


def _scan(folder: Path, ending: str, n_channels: int, where: str) -> dict[str, dict[int, Path]]:
    """``{case: {channel: file}}`` of ``{case}_{XXXX}{ending}`` files in ``folder``."""
    cases: dict[str, dict[int, Path]] = {}
    if not folder.is_dir():
        return cases
    odd, extra = [], []
    for f in sorted(folder.iterdir()):
        if f.name.startswith(".") or not f.name.endswith(ending):
            continue
        match = CHANNEL_FILE.match(f.name[: -len(ending)])
        if not match:
            odd.append(f.name)
            continue
        channel = int(match["channel"])
        if channel >= n_channels:
            extra.append(f.name)
        cases.setdefault(match["case"], {})[channel] = f
    if odd:
        raise ManifestError(f"{where}: {folder} holds file(s) not named <case>_<XXXX>{ending}: {odd[:5]}")
    if extra:
        raise ManifestError(
            f"{where}: {folder} holds channel file(s) {extra[:5]} beyond the {n_channels} channel(s) of channel_names (_0000.._{n_channels - 1:04d})"
        )
    return cases


def _case_of(entry: str, ending: str, known: set[str]) -> str:
    """Case id of a ``test`` entry: an id, or a file name like ``imagesTs/la_003.nii.gz``."""
    name = Path(str(entry)).name
    if name.endswith(ending):
        name = name[: -len(ending)]
    match = CHANNEL_FILE.match(name)
    return match["case"] if match and name not in known and match["case"] in known else name


def read_dataset_json(path: str | os.PathLike[str], channels: Sequence[str]) -> pd.DataFrame:
    """The cases of an nnU-Net v2 raw dataset as a manifest table (see the module docstring).

    Returns:
        DataFrame indexed by case id with columns ``case``, ``channels`` (absolute paths,
        the expected path where a file is missing, so that the case's check names it),
        ``label`` and ``split``, sorted by case id.

    Raises:
        ManifestError: for problems of the dataset as a whole (no cases, unknown test
            case, badly named or extra channel files, duplicate ids).
    """
    p = Path(path)
    info = load_dataset_json(p)
    base = p.resolve().parent
    ending = str(info["file_ending"])
    n = len(info["channel_names"])
    if len(channels) != n:
        raise ManifestError(f"dataset.json {p} declares {n} channel(s), dataset.channels lists {len(channels)}")
    where = f"dataset.json {p}"
    rows: dict[str, dict[str, str]] = {}
    if "dataset" in info:
        for case, entry in info["dataset"].items():
            images = list(entry.get("images", []))
            if len(images) != n:
                raise ManifestError(f"{where}: case {case!r} lists {len(images)} image(s) under 'dataset', expected one per channel ({n})")
            if not entry.get("label"):
                raise ManifestError(f"{where}: case {case!r} under 'dataset' has no 'label'; training and test cases need one")
            rows[case] = {"images": [str((base / f).resolve()) for f in images], "label": str((base / entry["label"]).resolve()), "split": "train"}
    else:
        images = _scan(base / "imagesTr", ending, n, where)
        labelled = {f.name[: -len(ending)] for f in (base / "labelsTr").glob(f"*{ending}")} if (base / "labelsTr").is_dir() else set()
        for case in sorted(set(images) | labelled):
            files = [str(base / "imagesTr" / f"{case}_{i:04d}{ending}") for i in range(n)]
            rows[case] = {"images": files, "label": str(base / "labelsTr" / f"{case}{ending}"), "split": "train"}
    test_images = _scan(base / "imagesTs", ending, n, where)
    has_test_labels = (base / "labelsTs").is_dir()
    listed = {_case_of(e, ending, set(rows) | set(test_images)) for e in info.get("test", [])}
    for case in sorted(test_images):
        if case in rows:
            raise ManifestError(f"{where}: case id {case!r} is in both imagesTr and imagesTs; case ids must be unique")
        if has_test_labels or case in listed:
            label = base / "labelsTs" / f"{case}{ending}"
            if not has_test_labels:
                raise ManifestError(f"{where}: test case {case!r} (imagesTs) has no label; this pipeline evaluates test cases, so add labelsTs/{case}{ending}")
            files = [str(base / "imagesTs" / f"{case}_{i:04d}{ending}") for i in range(n)]
            rows[case] = {"images": files, "label": str(label), "split": "test"}
    ignored = sorted(set(test_images) - set(rows))
    if ignored:
        log.info("%s: %d unlabelled imagesTs case(s) ignored (no labelsTs folder)", where, len(ignored))
    unknown = sorted(listed - set(rows))
    if unknown:
        raise ManifestError(f"{where}: 'test' lists case(s) {unknown[:5]} found in neither imagesTr/labelsTr nor imagesTs")
    for case in listed:
        rows[case]["split"] = "test"
    if not rows:
        raise ManifestError(f"{where}: the dataset has no cases (no files <case>_0000{ending} in {base / 'imagesTr'})")
    for case in rows:
        validate_case_id(case, where=f"{where}: ")
    in_tr = len(set(rows) - set(test_images))
    if "numTraining" in info and info["numTraining"] != in_tr:
        log.warning("%s: numTraining is %s but imagesTr/labelsTr hold %d case(s)", where, info["numTraining"], in_tr)
    frame = pd.DataFrame(
        {
            "case": list(rows),
            **{c: [r["images"][i] for r in rows.values()] for i, c in enumerate(channels)},
            "label": [r["label"] for r in rows.values()],
            "split": [r["split"] for r in rows.values()],
        }
    )
    return frame.sort_values("case").set_index("case", drop=False)[["case", *channels, "label", "split"]]
