"""A catalogue of the bad inputs a new user meets, one parametrized case each.

Every kind builds its bad input from real files in ``tmp_path`` (tiny volumes written with
SimpleITK, manifests, YAML, dataset.json, checkpoints), runs the entry point a user runs
(``python -m pipeline <stage>`` in-process, or ``validate_config``/``load_config``) and checks
that the one message names (1) the case, file or key, (2) the value found and (3) what was
expected. Adding a kind is one line of :data:`KINDS`: ``Kind(id, run, fragments)``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gzip
import io
import json
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipeline.__main__ import main
from pipeline.config import load_config, validate_config
from pipeline.errors import PipelineError
from tests.conftest import blob_case, write_volume

LABELS = {0: "background", 1: "outer", 2: "inner"}
SPACING = (1.0, 1.0, 1.5)
#: A schema-valid config with small settings; kinds change one key of it.
BASE: dict[str, Any] = {
    "dataset": {"manifest": "m.tsv", "labels": {0: "bg", 1: "fg"}},
    "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8, 16]}}},
}
#: Byte offset of ``pixdim[1]`` (the x spacing) in a NIfTI-1 header.
PIXDIM_1 = 80


@dataclass(frozen=True)
class Kind:
    """One kind of bad input: ``run(tmp_path)`` makes it and returns the message the user
    sees; each of ``fragments`` (``{tmp}`` is ``tmp_path``) must be in that message."""

    id: str
    run: Callable[[Path], str]
    fragments: tuple[str, ...]


# Running the entry points ---------------------------------------------------------------


def _cli(*argv: object) -> str:
    """``python -m pipeline ...`` in-process: it must exit 1 without a traceback; returns its error message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    text = err.getvalue()
    assert code == 1, text
    assert "Traceback" not in text, text
    found = re.search(r"(?m)^error: ", text)
    assert found, text
    return text[found.end() :]


def _raises(call: Callable[[], object]) -> str:
    """The message of the :class:`PipelineError` that ``call`` must raise."""
    with pytest.raises(PipelineError) as info:
        call()
    return str(info.value)


# Configs --------------------------------------------------------------------------------


def _with(*changes: tuple[str, Any]) -> dict[str, Any]:
    """:data:`BASE` with ``(dotted key, value)`` changes."""
    config = copy.deepcopy(BASE)
    for key, value in changes:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config


def _invalid(*changes: tuple[str, Any]) -> Callable[[Path], str]:
    """A kind that validates :data:`BASE` with ``changes``."""
    return lambda tmp: _raises(lambda: validate_config(_with(*changes)))


def _yaml_file(text: str) -> Callable[[Path], str]:
    """A kind that loads ``text`` as the config file ``c.yaml`` (or ``c.json`` if it starts with ``{``)."""

    def run(tmp: Path) -> str:
        path = tmp / ("c.json" if text.startswith("{") else "c.yaml")
        path.write_text(text, encoding="utf-8")
        return _raises(lambda: load_config(path))

    return run


# Datasets and the check stage -----------------------------------------------------------


def _dataset(tmp: Path, channels: tuple[str, ...] = ("image",), labels: dict[int, str] | None = None) -> Path:
    """Cases c0 (train) and c1 (test) with a blob label, a manifest and a config; returns the config."""
    lines = ["\t".join(["case", *channels, "label", "split"])]
    for i in range(2):
        image, label = blob_case(seed=i)
        files = []
        for channel in channels:
            name = f"c{i}.nii.gz" if len(channels) == 1 else f"c{i}_{channel}.nii.gz"
            write_volume(tmp / "images" / name, image, SPACING)
            files.append(f"images/{name}")
        write_volume(tmp / "labels" / f"c{i}.nii.gz", label, SPACING)
        lines.append("\t".join([f"c{i}", *files, f"labels/c{i}.nii.gz", "test" if i else "train"]))
    (tmp / "m.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = {"manifest": "m.tsv", "labels": labels or LABELS, "channels": [{"name": c} for c in channels]}
    config = {"dataset": dataset, "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}}}}
    (tmp / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return tmp / "c.yaml"


def _check(change: Callable[[Path], object], channels: tuple[str, ...] = ("image",)) -> Callable[[Path], str]:
    """A kind that breaks the dataset with ``change(tmp)`` and runs ``check --case c1``; no check file may be left."""

    def run(tmp: Path) -> str:
        config = _dataset(tmp, channels)
        change(tmp)
        message = _cli("check", "--config", config, "--case", "c1", "--output", tmp / "c1.json")
        assert not (tmp / "c1.json").exists()
        return message

    return run


def _label(array: np.ndarray | None = None, **geometry: Any) -> Callable[[Path], Path]:
    """Overwrite c1's label with ``array`` (default: its blob label) and ``geometry`` (default spacing SPACING)."""
    return lambda tmp: write_volume(tmp / "labels" / "c1.nii.gz", blob_case(seed=1)[1] if array is None else array, **{"spacing": SPACING, **geometry})


def _image(array: np.ndarray, spacing: tuple[float, ...] = SPACING) -> Callable[[Path], Path]:
    """Overwrite c1's image with ``array``."""
    return lambda tmp: write_volume(tmp / "images" / "c1.nii.gz", array, spacing)


def _labelled(value: float, dtype: type = np.uint8) -> np.ndarray:
    """c1's blob label with one voxel set to ``value``."""
    label = blob_case(seed=1)[1].astype(dtype)
    label[0, 0, 0] = value
    return label


def _pixdim(x_spacing: float) -> Callable[[Path], None]:
    """c1's image with ``x_spacing`` written into the NIfTI header (SimpleITK would not write it)."""

    def change(tmp: Path) -> None:
        plain = write_volume(tmp / "plain.nii", blob_case(seed=1)[0], SPACING)
        data = bytearray(plain.read_bytes())
        data[PIXDIM_1 : PIXDIM_1 + 4] = struct.pack("<f", x_spacing)
        (tmp / "images" / "c1.nii.gz").write_bytes(gzip.compress(bytes(data)))

    return change


def _cut(path: str, keep: float) -> Callable[[Path], None]:
    """Keep the first ``keep`` share of the file's bytes."""

    def change(tmp: Path) -> None:
        data = (tmp / path).read_bytes()
        (tmp / path).write_bytes(data[: int(len(data) * keep)])

    return change


def _whole_dataset(text: str | None = None, **dataset: Any) -> Callable[[Path], str]:
    """A kind that runs ``check`` over the dataset, its manifest replaced by ``text`` or its dataset section changed by ``dataset``."""

    def run(tmp: Path) -> str:
        config = _dataset(tmp)
        if text is not None:
            (tmp / "m.tsv").write_text(text, encoding="utf-8")
        if dataset:
            settings = yaml.safe_load(config.read_text(encoding="utf-8"))
            settings["dataset"].update(dataset)
            config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        return _cli("check", "--config", config)

    return run


ROW = "images/c0.nii.gz\tlabels/c0.nii.gz"
HEADER = "case\timage\tlabel\tsplit\n"


# dataset.json ---------------------------------------------------------------------------

INFO = {"channel_names": {"0": "T2", "1": "ADC"}, "labels": {"background": 0, "zone": 1, "lesion": 2}, "file_ending": ".nii.gz"}


def _nnunet(info: dict[str, Any] | str | None = None, extra: tuple[str, ...] = (), **dataset: Any) -> Callable[[Path], str]:
    """A kind that runs ``check`` on an nnU-Net raw dataset (cases p1, p2; two channels) with
    ``info`` as dataset.json, ``extra`` image files in imagesTr and ``dataset`` in the config."""

    def run(tmp: Path) -> str:
        for i, case in enumerate(("p1", "p2")):
            image, label = blob_case(seed=i)
            for channel in range(2):
                write_volume(tmp / "imagesTr" / f"{case}_{channel:04d}.nii.gz", image)
            write_volume(tmp / "labelsTr" / f"{case}.nii.gz", label)
        for name in extra:
            write_volume(tmp / "imagesTr" / name, blob_case()[0])
        (tmp / "dataset.json").write_text(info if isinstance(info, str) else json.dumps(info or INFO), encoding="utf-8")
        (tmp / "c.yaml").write_text(yaml.safe_dump({"dataset": {"dataset_json": "dataset.json", **dataset}, "experiments": {"e": {}}}), encoding="utf-8")
        return _cli("check", "--config", tmp / "c.yaml")

    return run


# Model folders, checkpoints and `python -m pipeline predict` ----------------------------


@functools.cache
def _trained() -> tuple[dict[str, Any], dict[str, Any]]:
    """A one-channel 3D U-Net checkpoint's content (weights, architecture, plan, experiment),
    and the same with another depth (channels [4, 8, 16])."""
    import torch

    from pipeline.models import build_network
    from pipeline.preprocessing.plan import make_plan
    from pipeline.tasks.segmentation.train import architecture

    config = validate_config(
        {
            "dataset": {"manifest": "m", "labels": LABELS},
            "plan": {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [8, 8, 8], "batch_size": 2},
            "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}}},
        }
    )
    fingerprint = {"spacings": [[1.0, 1.0, 1.0]], "shapes": [[12, 14, 16]], "intensity": {"image": {}}, "class_totals": {n: 10 for n in LABELS.values()}}
    plan = make_plan(fingerprint, config)
    experiment = config["experiments"]["e"]
    arch = architecture(experiment, plan)
    deeper = copy.deepcopy(arch)
    deeper["model"].update(channels=[4, 8, 16], strides=None, kernel_size=3)
    torch.manual_seed(0)
    states = [{"model": build_network(a).state_dict(), "architecture": a, "plan": plan, "experiment": experiment} for a in (arch, deeper)]
    return states[0], states[1]


def _fold(tmp: Path, fold: int, write: Callable[[Path], object] | dict[str, Any] | None = None) -> Path:
    """``tmp/model/fold_<fold>/best.pt``: the trained checkpoint, ``write(path)``'s file, or a saved dict."""
    from pipeline.training.checkpoint import save_checkpoint

    path = tmp / "model" / f"fold_{fold}" / "best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if callable(write):
        write(path)
    else:
        save_checkpoint(path, _trained()[0] if write is None else write)
    return path


def _scan(path: Path) -> Path:
    """A small 3D image at ``path``."""
    return write_volume(path, blob_case(shape=(9, 10, 11))[0])


def _predict(
    inputs: Callable[[Path], object] = lambda tmp: _scan(tmp / "in" / "scan.nii.gz"),
    folds: tuple[Callable[[Path], object] | dict[str, Any] | None, ...] = (None,),
    args: tuple[str, ...] = (),
    source: str = "in",
    output: str = "out",
) -> Callable[[Path], str]:
    """A kind that runs ``predict --model tmp/model --input tmp/<source> --output tmp/<output>``
    after writing ``inputs(tmp)`` and one checkpoint per entry of ``folds``; no prediction may be left."""

    def run(tmp: Path) -> str:
        inputs(tmp)
        for fold, write in enumerate(folds):
            _fold(tmp, fold, write)
        message = _cli("predict", "--model", tmp / "model", "--input", tmp / source, "--output", tmp / output, *args)
        assert not list(tmp.glob(f"{output}/*.nii.gz")) or output == source
        return message

    return run


def _torch_save(value: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch

        torch.save(value, path)

    return write


def _truncated_checkpoint(path: Path) -> None:
    from pipeline.training.checkpoint import save_checkpoint

    save_checkpoint(path, _trained()[0])
    path.write_bytes(path.read_bytes()[:300])


def _of_task(task: str) -> dict[str, Any]:
    state = _trained()[0]
    return {**state, "architecture": {**state["architecture"], "task": task}}


# `python -m pipeline evaluate` ----------------------------------------------------------


def _evaluate(prediction: np.ndarray | None = None, args: tuple[str, ...] = ("--labels", "1=outer", "2=inner")) -> Callable[[Path], str]:
    """A kind that scores ``prediction`` (default: the reference itself) against c0's blob label."""

    def run(tmp: Path) -> str:
        reference = blob_case()[1]
        write_volume(tmp / "ref" / "c0.nii.gz", reference)
        write_volume(tmp / "pred" / "c0.nii.gz", reference if prediction is None else prediction)
        return _cli("evaluate", "--reference", tmp / "ref", "--prediction", tmp / "pred", "--output", tmp / "scores.tsv", *args)

    return run


def _with_voxel(value: int) -> np.ndarray:
    label = blob_case()[1].copy()
    label[0, 0, 0] = value
    return label


# The catalogue --------------------------------------------------------------------------

C1_IMAGE, C1_LABEL = "case 'c1', file {tmp}/images/c1.nii.gz", "case 'c1', file {tmp}/labels/c1.nii.gz"
GRID = "channels and label must share one grid"
MODEL_KEY = "experiments.e.model (unet, 3D)"

KINDS = [
    # Config keys: types, ranges, numbers.
    Kind("config_wrong_type", _invalid(("experiments.e.training.epochs", "ten")), ("experiments.e.training.epochs", "'ten'", "expected an integer")),
    Kind("config_bool_for_integer", _invalid(("plan.folds", True)), ("plan.folds", "True", "expected an integer")),
    Kind("config_above_maximum", _invalid(("experiments.e.training.momentum", 1.5)), ("experiments.e.training.momentum", "1.5", "maximum of 1")),
    Kind("config_below_minimum", _invalid(("plan.folds", 1)), ("plan.folds", "1 is less than", "minimum of 2")),
    Kind("config_zero_where_positive", _invalid(("plan.target_spacing", [0.0, 1.0, 1.0])), ("plan.target_spacing.0", "0.0", "minimum of 0")),
    Kind("config_nan", _invalid(("experiments.e.training.learning_rate", math.nan)), ("experiments.e.training.learning_rate", "nan", "must be finite")),
    Kind(
        "config_inf_in_yaml",
        _yaml_file("dataset: {manifest: m.tsv, labels: {0: bg, 1: fg}, geometry_tolerance: .inf}\nexperiments: {e: {}}\n"),
        ("dataset.geometry_tolerance", "inf", "must be finite"),
    ),  # fmt: skip
    Kind("config_not_a_choice", _invalid(("experiments.e.training.optimizer", "adam")), ("experiments.e.training.optimizer", "'adam'", "['sgd', 'adamw']")),
    Kind(
        "config_not_any_alternative",
        _invalid(("experiments.e.training.num_workers", "many")),
        ("experiments.e.training.num_workers", "'many'", "expected an integer >= 0 or one of ['auto']"),
    ),  # fmt: skip
    # Config keys: names.
    Kind("config_unknown_key", _invalid(("experiments.e.training.epochz", 3)), ("'epochz' in experiments.e.training", "did you mean 'epochs'?", "valid keys:")),
    Kind("config_unknown_section", _invalid(("planx", {})), ("unknown key 'planx' in (top level)", "did you mean 'plan'?", "valid keys: dataset")),
    Kind(
        "config_missing_required_key",
        lambda tmp: _raises(lambda: validate_config({"dataset": {"manifest": "m"}, "experiments": {"e": {}}})),
        ("dataset:", "'labels'", "is a required property"),
    ),  # fmt: skip
    Kind(
        "config_key_twice_yaml",
        _yaml_file("dataset: {manifest: m.tsv, labels: {0: bg, 1: fg}}\nexperiments:\n  e: {}\n  e: {}\n"),
        ("{tmp}/c.yaml", "key 'experiments.e' appears twice (lines 3 and 4)", "each key may appear once"),
    ),  # fmt: skip
    Kind(
        "config_key_twice_json",
        _yaml_file('{"dataset": {"manifest": "m.tsv", "labels": {"0": "bg", "1": "fg"}}, "experiments": {"a": {}, "a": {}}}'),
        ("{tmp}/c.json", "key(s) ['a'] appear twice", "give each key once"),
    ),  # fmt: skip
    Kind("config_file_not_a_mapping", _yaml_file("- dataset\n- experiments\n"), ("{tmp}/c.yaml", "got list", "must hold a mapping of keys")),
    Kind(
        "config_manifest_and_dataset_json",
        _invalid(("dataset.dataset_json", "d.json")),
        ("dataset.manifest and dataset.dataset_json", "are both set", "name one of them"),
    ),
    # Config: lengths and cross-key checks.
    Kind("config_patch_size_length", _invalid(("plan.patch_size", [64, 64])), ("plan.patch_size", "[64, 64] has 2 values", "give 3 values (z, y, x")),
    Kind(
        "config_list_length",
        _invalid(("experiments.e.training.augmentation.gamma_range", [0.7])),
        ("experiments.e.training.augmentation.gamma_range", "[0.7] has 1 entry", "expected exactly 2"),
    ),  # fmt: skip
    Kind("config_labels_without_background", _invalid(("dataset.labels", {1: "a", 2: "x"})), ("dataset.labels", "[1, 2]", "must include 0 (the background)")),
    Kind(
        "config_label_key_not_a_value", _invalid(("dataset.labels", {0: "bg", "one": "x"})), ("unknown key 'one' in dataset.labels", "keys must match ^[0-9]+$")
    ),
    Kind("config_one_class", _invalid(("dataset.labels", {0: "bg"})), ("dataset.labels", "{'0': 'bg'} has 1 entry", "expected at least 2")),
    Kind(
        "config_class_name_twice",
        _invalid(("dataset.labels", {0: "bg", 1: "liver", 2: "Liver"})),
        ("dataset.labels: class name 'liver'", "values [1, 2]", "each class needs its own name"),
    ),  # fmt: skip
    Kind(
        "config_fold_not_in_plan",
        _invalid(("experiments.e.training.folds", [7])),
        ("experiments.e.training.folds", "fold(s) [7] do not exist", "folds are 0..4"),
    ),
    Kind(
        "config_batch_beyond_memory",
        _invalid(("plan.patch_size", [256, 256, 256]), ("plan.batch_size", 4)),
        ("plan.batch_size 4 x plan.patch_size [256, 256, 256]", "67108864 voxels", "more than 33554432"),
    ),  # fmt: skip
    Kind("config_init_from_unknown", _invalid(("experiments.f", {"init_from": "nope"})), ("experiments.f.init_from", "'nope'", "expected one of ['e']")),
    # Model, loss and class-weight settings.
    Kind("model_unknown_name", _invalid(("experiments.e.model.name", "vnet")), ("experiments.e.model.name", "'vnet'", "['unet', 'deeplabv3plus', 'segnet']")),
    Kind("model_strides_length", _invalid(("experiments.e.model.strides", [2, 2, 2])), (MODEL_KEY, "got [2, 2, 2] (3 entries)", "a list of 2 entries")),
    Kind("model_kernel_size_length", _invalid(("experiments.e.model.kernel_size", [3, 3])), (MODEL_KEY, "got [3, 3] (2 entries)", "a list of 3 entries")),
    Kind(
        "model_setting_of_another_architecture",
        _invalid(("experiments.e.model", {"name": "deeplabv3plus", "strides": [2, 2]})),
        ("experiments.e.model (deeplabv3plus, 3D)", "strides=[2, 2]", "applies to ['segnet', 'unet'] only"),
    ),  # fmt: skip
    Kind("model_dropout_out_of_range", _invalid(("experiments.e.model.dropout", 1.5)), ("experiments.e.model.dropout", "1.5", "maximum of 1")),
    Kind(
        "loss_unknown_name",
        _invalid(("experiments.e.loss.name", "tversky")),
        ("experiments.e.loss.name", "'tversky'", "['ce', 'dice', 'focal', 'dice_ce', 'dice_focal']"),
    ),
    Kind("loss_unknown_setting", _invalid(("experiments.e.loss.alpha", 0.3)), ("unknown key 'alpha' in experiments.e.loss", "valid keys: batch_dice")),
    Kind("loss_negative_weight", _invalid(("experiments.e.loss.lambda_dice", -1)), ("experiments.e.loss.lambda_dice", "-1", "minimum of 0")),
    Kind(
        "loss_setting_of_another_loss",
        _invalid(("experiments.e.loss.gamma", 3.0)),
        ("experiments.e.loss (dice_ce)", "gamma=3.0", "applies to ['dice_focal', 'focal'] only"),
    ),
    Kind(
        "class_weights_wrong_length",
        _invalid(("experiments.e.class_weights", [1.0, 2.0, 3.0])),
        ("experiments.e.class_weights", "[1.0, 2.0, 3.0] has 3 value(s)", "declares 2 classes (['bg', 'fg'])"),
    ),  # fmt: skip
    Kind(
        "class_weights_negative",
        _invalid(("experiments.e.class_weights", [1.0, -2.0])),
        ("experiments.e.class_weights", "[1.0, -2.0]", "one of ['auto', 'none'] or a list (each entry a number >= 0)"),
    ),  # fmt: skip
    # Image and label files of a case (`check --case`).
    Kind("image_missing", _check(lambda tmp: (tmp / "images" / "c1.nii.gz").unlink()), (C1_IMAGE, "file does not exist", "expected an image: .nii.gz")),
    Kind(
        "image_not_an_image",
        _check(lambda tmp: (tmp / "images" / "c1.nii.gz").write_bytes(b"hello, not an image")),
        (C1_IMAGE, "corrupt gzip data", "expected a complete gzip stream"),
    ),  # fmt: skip
    Kind("image_truncated", _check(_cut("images/c1.nii.gz", 0.5)), (C1_IMAGE, "truncated gzip stream", "expected a complete gzip stream")),
    Kind("image_empty_file", _check(lambda tmp: (tmp / "images" / "c1.nii.gz").write_bytes(b"")), (C1_IMAGE, "file is empty (0 bytes)", "expected an image")),
    Kind(
        "image_nan_voxel",
        _check(_image(np.where(np.arange(12 * 14 * 16).reshape(12, 14, 16) == 5, np.nan, 1.0).astype(np.float32))),
        (C1_IMAGE, "1 voxel(s) are NaN or infinite", "expected finite intensities"),
    ),  # fmt: skip
    Kind("image_2d_in_3d_dataset", _check(_image(blob_case(seed=1)[0][0], (1.0, 1.0))), (C1_IMAGE, "image has 2 dimensions (shape (14, 16))", "expects 3D")),
    Kind("header_spacing_zero", _check(_pixdim(0.0)), (C1_IMAGE, "spacing pixdim[1:4] (0.0, 1.0, 1.5)", "every voxel size must be a number > 0 mm")),
    Kind("header_spacing_negative", _check(_pixdim(-1.0)), (C1_IMAGE, "spacing pixdim[1:4] (-1.0, 1.0, 1.5)", "> 0 mm")),
    Kind("header_spacing_nan", _check(_pixdim(math.nan)), (C1_IMAGE, "spacing pixdim[1:4] (nan, 1.0, 1.5)", "expected finite numbers")),
    Kind(
        "label_missing",
        _check(lambda tmp: (tmp / "labels" / "c1.nii.gz").unlink()),
        (C1_LABEL, "label file does not exist", "the dataset names it as this case's label"),
    ),
    Kind(
        "label_shape_differs", _check(_label(blob_case(shape=(12, 14, 15), seed=1)[1])), (C1_LABEL, "size (15, 14, 12) differs from (16, 14, 12) voxels", GRID)
    ),
    Kind("label_spacing_differs", _check(_label(spacing=(1.0, 1.0, 2.0))), (C1_LABEL, "spacing (1.0, 1.0, 2.0) mm differs from (1.0, 1.0, 1.5) mm", GRID)),
    Kind("label_origin_differs", _check(_label(origin=(5.0, 0.0, 0.0))), (C1_LABEL, "origin (5.0, 0.0, 0.0) mm differs from (0.0, 0.0, 0.0) mm", GRID)),
    Kind("label_direction_differs", _check(_label(direction=(0, 1, 0, 1, 0, 0, 0, 0, 1))), (C1_LABEL, "direction (0.0, 1.0, 0.0, 1.0, 0.0, 0.0", GRID)),
    Kind("label_value_not_declared", _check(_label(_labelled(7))), (C1_LABEL, "label value(s) [7] are not declared", "dataset.labels declares [0, 1, 2]")),
    Kind("label_value_negative", _check(_label(_labelled(-1, np.int16))), (C1_LABEL, "label value(s) [-1]", "dataset.labels declares [0, 1, 2]")),
    Kind("label_not_integer", _check(_label(_labelled(0.5, np.float32))), (C1_LABEL, "non-integer value 0.5", "expected integer class values")),
    Kind(
        "channel_missing_in_row",
        _check(lambda tmp: (tmp / "m.tsv").write_text((tmp / "m.tsv").read_text().replace("images/c1_t2.nii.gz", "")), ("t1", "t2")),
        ("case 'c1'", "no file given for input channel(s) [2] of 2", "every case needs all 2 channels"),
    ),  # fmt: skip
    Kind(
        "channel_grids_differ",
        _check(lambda tmp: write_volume(tmp / "images" / "c1_t2.nii.gz", blob_case(seed=1)[0], (1.0, 1.0, 3.0)), ("t1", "t2")),
        ("case 'c1', file {tmp}/images/c1_t2.nii.gz", "spacing (1.0, 1.0, 3.0) mm differs from (1.0, 1.0, 1.5) mm", "of the first channel"),
    ),  # fmt: skip
    # Manifests (`check` of the whole dataset).
    Kind("manifest_missing", _whole_dataset(manifest="gone.tsv"), ("manifest {tmp}/gone.tsv", "does not exist", "dataset.manifest names it")),
    Kind(
        "manifest_column_missing",
        _whole_dataset("case\timage\tsplit\nc0\timages/c0.nii.gz\ttrain\n"),
        ("manifest {tmp}/m.tsv", "lacks column(s) ['label']", "expected columns ['case', 'image', 'label']"),
    ),  # fmt: skip
    Kind("manifest_no_rows", _whole_dataset(HEADER), ("manifest {tmp}/m.tsv", "lists no cases", "expected one row per case")),
    Kind(
        "manifest_case_twice",
        _whole_dataset(f"{HEADER}c0\t{ROW}\ttrain\nc0\t{ROW}\ttest\n"),
        ("manifest {tmp}/m.tsv", "['c0'] more than once", "must be unique"),
    ),
    Kind("manifest_bad_case_id", _whole_dataset(f"{HEADER}c 0/x\t{ROW}\ttrain\n"), ("manifest {tmp}/m.tsv, line 2", "case id 'c 0/x'", "use letters, digits")),
    Kind(
        "manifest_empty_path",
        _whole_dataset(f"{HEADER}c0\t\tlabels/c0.nii.gz\ttrain\n"),
        ("case 'c0'", "no file given for input channel(s) [1] of 1", "needs all 1 channels"),
    ),
    Kind(
        "manifest_wrong_split",
        _whole_dataset(f"{HEADER}c0\t{ROW}\tvalidation\n"),
        ("manifest {tmp}/m.tsv", "split 'validation'", "expected one of ['train', 'test']"),
    ),
    Kind(
        "manifest_not_tab_separated",
        _whole_dataset("case,image,label\nc0,images/c0.nii.gz,labels/c0.nii.gz\n"),
        ("manifest {tmp}/m.tsv", "found ['case,image,label']", "expected columns ['case', 'image', 'label']"),
    ),  # fmt: skip
    Kind(
        "case_not_in_dataset",
        lambda tmp: _cli("check", "--config", _dataset(tmp), "--case", "c9", "--output", tmp / "c9.json"),
        ("case 'c9'", "is not in the dataset", "known: 2 cases, e.g. ['c0', 'c1']"),
    ),  # fmt: skip
    # nnU-Net dataset.json.
    Kind(
        "dataset_json_missing",
        _nnunet(dataset_json="nowhere/dataset.json"),
        ("dataset.json {tmp}/nowhere/dataset.json", "does not exist", "dataset.dataset_json names it"),
    ),
    Kind(
        "dataset_json_not_json",
        _nnunet("{not json"),
        ("dataset.json {tmp}/dataset.json", "is not valid JSON", "Expecting property name enclosed in double quotes"),
    ),
    Kind(
        "dataset_json_entry_missing",
        _nnunet({k: v for k, v in INFO.items() if k != "file_ending"}),
        ("dataset.json {tmp}/dataset.json", "lacks ['file_ending']", "expected 'channel_names', 'labels' and 'file_ending'"),
    ),  # fmt: skip
    Kind(
        "dataset_json_no_background",
        _nnunet({**INFO, "labels": {"a": 1, "b": 2}}),
        ("dataset.json {tmp}/dataset.json", "got [1, 2]", "include 0 (the background)"),
    ),
    Kind(
        "dataset_json_channels_differ",
        _nnunet(channels=[{"name": "T2"}]),
        ("dataset.channels ['T2']", "channel_names ['T2', 'ADC'] of dataset.json {tmp}/dataset.json", "the same channels in the same order"),
    ),
    Kind(
        "dataset_json_labels_differ",
        _nnunet(labels={0: "background", 1: "lesion", 2: "zone"}),
        (
            "dataset.labels {'0': 'background', '1': 'lesion', '2': 'zone'}",
            "the labels {'0': 'background', '1': 'zone', '2': 'lesion'} of dataset.json",
            "give the same values and names",
        ),
    ),  # fmt: skip
    Kind(
        "dataset_json_extra_channel_file",
        _nnunet(extra=("p1_0002.nii.gz",)),
        ("{tmp}/imagesTr", "['p1_0002.nii.gz']", "beyond the 2 channel(s) of channel_names (_0000.._0001)"),
    ),
    # Checkpoints of a model folder (`predict`).
    Kind(
        "checkpoint_empty",
        _predict(folds=(lambda p: p.write_bytes(b""),)),
        ("checkpoint {tmp}/model/fold_0/best.pt", "is empty (0 bytes)", "expected a checkpoint that training wrote"),
    ),
    Kind(
        "checkpoint_truncated",
        _predict(folds=(_truncated_checkpoint,)),
        ("checkpoint {tmp}/model/fold_0/best.pt", "truncated or corrupt", "(300 bytes, ", "expected a complete checkpoint"),
    ),
    Kind(
        "checkpoint_of_something_else",
        _predict(folds=(_torch_save([1, 2, 3]),)),
        ("checkpoint {tmp}/model/fold_0/best.pt", "holds a list", "a dict with ['model', 'architecture']"),
    ),
    Kind(
        "checkpoint_lacks_entries",
        _predict(folds=(_torch_save({"weights": 1}),)),
        ("checkpoint {tmp}/model/fold_0/best.pt", "lacks ['model', 'architecture']", "found the entries ['weights']"),
    ),
    Kind(
        "checkpoint_other_architecture",
        lambda tmp: _predict(folds=(None, _trained()[1]))(tmp),
        ("checkpoint {tmp}/model/fold_1/best.pt", "model settings {'channels': [4, 8, 16]", "needs {'channels': [4, 8]"),
    ),  # fmt: skip
    Kind(
        "checkpoint_other_task",
        lambda tmp: _predict(folds=(_of_task("landmarks"),))(tmp),
        ("checkpoint {tmp}/model/fold_0/best.pt", "is a landmarks model", "not a segmentation model"),
    ),
    Kind("model_folder_missing", _predict(folds=(), args=()), ("model folder {tmp}/model", "does not exist", "expected a folder with fold_<k>/best.pt")),
    Kind("model_fold_missing", _predict(args=("--folds", "3")), ("{tmp}/model/fold_3/best.pt", "lacks the checkpoint(s)", "holds the trained fold(s) [0]")),
    # Inputs of `predict`.
    Kind("predict_empty_folder", _predict(inputs=lambda tmp: (tmp / "in").mkdir()), ("input {tmp}/in", "is an empty folder", "expected image files (.nii.gz")),
    Kind("predict_missing_input", _predict(inputs=lambda tmp: None), ("input {tmp}/in", "does not exist", "expected image files (.nii.gz")),
    Kind(
        "predict_not_an_image",
        _predict(inputs=lambda tmp: (tmp / "notes.txt").write_text("x"), source="notes.txt"),
        ("input {tmp}/notes.txt", "is not an image", "expected image files"),
    ),
    Kind(
        "predict_wrong_channel_count",
        _predict(inputs=lambda tmp: [_scan(tmp / "in" / f"a_000{c}.nii.gz") for c in (0, 1)]),
        ("case 'a'", "found channel(s) [0, 1] (a_0000.nii.gz, a_0001.nii.gz)", "the model needs channels [0]"),
    ),  # fmt: skip
    Kind(
        "predict_2d_image",
        _predict(inputs=lambda tmp: write_volume(tmp / "in" / "flat.nii.gz", blob_case()[0][0])),
        ("case 'flat', file {tmp}/in/flat.nii.gz", "image has 2 dimensions", "the model expects 3D images"),
    ),
    Kind(
        "predict_truncated_image",
        _predict(inputs=lambda tmp: (_scan(tmp / "in" / "scan.nii.gz"), _cut("in/scan.nii.gz", 0.5)(tmp))),
        ("case 'scan', file {tmp}/in/scan.nii.gz", "truncated gzip stream", "expected a complete gzip stream"),
    ),  # fmt: skip
    Kind("predict_output_is_input", _predict(output="in"), ("output folder {tmp}/in", "is the input folder {tmp}/in", "choose a folder outside the inputs")),
    Kind(
        "predict_output_inside_input",
        _predict(output="in/pred"),
        ("output folder {tmp}/in/pred", "lies inside the input folder {tmp}/in", "choose a folder outside the inputs"),
    ),
    # `evaluate`.
    Kind("evaluate_value_not_in_labels", _evaluate(_with_voxel(7)), ("case 'c0'", "label value 7", "not in the labels [0, 1, 2]")),
    Kind(
        "evaluate_bad_convention",
        _evaluate(args=("--labels", "1=outer", "2=inner", "--set", "empty_both=maybe")),
        ("--set empty_both=maybe", "got 'maybe'", "evaluation.empty_both must be one of ['one', 'nan']"),
    ),  # fmt: skip
    Kind("evaluate_label_not_a_number", _evaluate(args=("--labels", "one=outer")), ("--label", "got 'one'", "must be integers (VALUE=NAME, e.g. 1=liver)")),
]


def test_the_catalogue_holds_at_least_45_kinds_with_unique_ids():
    ids = [kind.id for kind in KINDS]
    assert len(ids) >= 45 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("kind", KINDS, ids=[kind.id for kind in KINDS])
def test_a_bad_input_is_refused_naming_where_what_and_what_was_expected(kind: Kind, tmp_path: Path):
    message = kind.run(tmp_path)
    missing = [f for f in (f.replace("{tmp}", str(tmp_path)) for f in kind.fragments) if f not in message]
    assert not missing, f"{kind.id}: {missing} not in the message:\n{message}"
