"""Checkpoints broken in every way a file can be broken give a CheckpointError that names
the file and the problem - through prediction (in-process and the real CLI), resuming a
training and ``init_from`` - and never an error from the error handling itself."""

import contextlib
import ctypes
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from pipeline.config import validate_config
from pipeline.models import build_network
from pipeline.preprocessing.plan import make_plan
from pipeline.tasks.segmentation.new_images import predict_folder
from pipeline.tasks.segmentation.train import architecture
from pipeline.training.checkpoint import CheckpointError, error_reason, load_checkpoint
from tests.conftest import REPO, blob_case, write_volume

CONFIG = {
    "dataset": {"manifest": "m", "labels": {0: "bg", 1: "outer", 2: "inner"}},
    "plan": {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [8, 8, 8], "batch_size": 2},
    "experiments": {"e": {"model": {"name": "unet", "channels": [4, 8]}}},
}
NOBODY = 65534
MARKER = Path(tempfile.gettempdir()) / "pwned_by_test_checkpoints"


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def segmentation_state() -> dict:
    """A valid segmentation checkpoint's content: weights, architecture, plan, experiment."""
    config = validate_config(CONFIG)
    fingerprint = {"spacings": [[1.0, 1.0, 1.0]], "shapes": [[12, 14, 16]], "intensity": {"image": {}}, "class_totals": {"bg": 10, "outer": 5, "inner": 1}}
    plan = make_plan(fingerprint, config)
    experiment = config["experiments"]["e"]
    arch = architecture(experiment, plan)
    torch.manual_seed(0)
    return {"model": build_network(arch).state_dict(), "architecture": arch, "plan": plan, "experiment": experiment}


def _first_float(state: dict) -> str:
    return next(k for k, v in state["model"].items() if v.is_floating_point() and v.ndim >= 1)


def _with_weights(state: dict, change) -> dict:
    weights = dict(state["model"])
    change(weights, _first_float(state))
    return {**state, "model": weights}


def _torch_archive_without_tensor_data(path: Path, state: dict) -> None:
    torch.save(state, path.with_suffix(".full"))
    with zipfile.ZipFile(path.with_suffix(".full")) as full, zipfile.ZipFile(path, "w") as broken:
        for name in full.namelist():
            if "/data/" not in name:
                broken.writestr(name, full.read(name))
    path.with_suffix(".full").unlink()


def _truncated(fraction: float | None, size: int | None = None):
    def write(path: Path, state: dict) -> None:
        torch.save(state, path)
        data = path.read_bytes()
        path.write_bytes(data[: size if size is not None else int(len(data) * fraction)])

    return write


def _zip_of_something_else(path: Path, state: dict) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/hello.txt", "not a checkpoint")


def _unbuildable(state: dict) -> dict:
    return {**state, "architecture": {"model": {"name": "unet"}, "num_classes": 3}}


#: kind: (write the broken file at ``path`` from a valid ``state``, what the message says)
BROKEN = {
    "empty": (lambda p, s: p.write_bytes(b""), "is empty"),
    "truncated_1_byte": (_truncated(None, 1), "truncated or corrupt"),
    "truncated_100_bytes": (_truncated(None, 100), "truncated or corrupt"),
    "truncated_half": (_truncated(0.5), "truncated or corrupt"),
    "truncated_last_byte": (_truncated(None, -1), "truncated or corrupt"),
    "random_bytes": (lambda p, s: p.write_bytes(random.Random(0).randbytes(4096)), "truncated or corrupt"),
    "zip_with_a_wrong_member": (_zip_of_something_else, "truncated or corrupt"),
    "zip_without_tensor_data": (_torch_archive_without_tensor_data, "truncated or corrupt"),
    "plain_pickle": (lambda p, s: p.write_bytes(pickle.dumps({"model": 1}, protocol=4)), "truncated or corrupt"),
    "forbidden_global": (lambda p, s: torch.save({**s, "model": _Evil()}, p, pickle_module=pickle), "refused"),
    "a_list": (lambda p, s: torch.save([1, 2, 3], p), "holds a list, not a checkpoint"),
    "a_tensor": (lambda p, s: torch.save(torch.ones(3), p), "holds a Tensor, not a checkpoint"),
    "no_model_no_architecture": (lambda p, s: torch.save({"weights": 1}, p), "lacks ['model', 'architecture']"),
    "no_architecture": (lambda p, s: torch.save({"model": s["model"]}, p), "lacks ['architecture']"),
    "model_not_a_state_dict": (lambda p, s: torch.save({**s, "model": [1, 2]}, p), "'model' is a list, not a state dict"),
    "model_with_a_non_tensor": (lambda p, s: torch.save({**s, "model": {**s["model"], "extra": 3}}, p), "not a state dict of named tensors"),
    "architecture_not_a_dict": (lambda p, s: torch.save({**s, "architecture": "unet"}, p), "'architecture' is a str, not a dict"),
    "directory": (lambda p, s: p.mkdir(), "is a directory"),
    "no_read_permission": (lambda p, s: (torch.save(s, p), p.chmod(0)), "cannot be read: Permission denied"),
    "wrong_shape": (
        lambda p, s: torch.save(_with_weights(s, lambda w, k: w.__setitem__(k, torch.zeros(w[k].shape[0] + 1, *w[k].shape[1:]))), p),
        "does not fit the model",
    ),
    "wrong_dtype": (
        lambda p, s: torch.save(_with_weights(s, lambda w, k: w.__setitem__(k, w[k].double())), p),
        "has dtype torch.float64, the model needs torch.float32",
    ),
    "missing_tensor": (lambda p, s: torch.save(_with_weights(s, lambda w, k: w.pop(k)), p), "missing tensors"),
    "nan_weights": (lambda p, s: torch.save(_with_weights(s, lambda w, k: w.__setitem__(k, torch.full_like(w[k], float("nan")))), p), "non-finite weights"),
}
#: Only the prediction path reads these.
PREDICTION_ONLY = {
    "unbuildable_architecture": (lambda p, s: torch.save(_unbuildable(s), p), "does not describe a network"),
    "no_plan": (lambda p, s: torch.save({k: v for k, v in s.items() if k != "plan"}, p), "plan"),
    "broken_mirror_validation": (lambda p, s: torch.save({**s, "mirror_validation": {"dice": "high"}}, p), "mirror_validation lacks numbers"),
}


@contextlib.contextmanager
def unprivileged(enabled: bool):
    """As root, read files with the rights of ``nobody`` for the block (root reads any file;
    the files lie in :func:`world_readable_tmp`)."""
    if not (enabled and os.geteuid() == 0):
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def _without_permission_override() -> None:
    """In a child of root: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set,
    so the program it executes respects file permissions (root's own interpreter stays usable)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture()
def world_readable_tmp():
    """A temporary folder that ``nobody`` can enter (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="checkpoints_"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def broken_model_folder(root: Path, kind: str) -> Path:
    """``root/model/fold_0/best.pt`` broken as ``kind`` says; returns the checkpoint's path."""
    write, _ = {**BROKEN, **PREDICTION_ONLY}[kind]
    path = root / "model" / "fold_0" / "best.pt"
    path.parent.mkdir(parents=True)
    root.chmod(0o755)
    for folder in (root / "model", path.parent):
        folder.chmod(0o755)
    write(path, segmentation_state())
    return path


def new_image(root: Path) -> Path:
    image, _ = blob_case(shape=(9, 10, 11))
    return write_volume(root / "in" / "scan.nii.gz", image)


@pytest.mark.parametrize("kind", [*BROKEN, *PREDICTION_ONLY])
def test_prediction_with_a_broken_checkpoint_names_the_file_and_the_problem(world_readable_tmp, kind):
    path = broken_model_folder(world_readable_tmp, kind)
    source = new_image(world_readable_tmp)
    with pytest.raises(CheckpointError) as caught, unprivileged(kind == "no_read_permission"):
        predict_folder(path.parent.parent, source, world_readable_tmp / "out")
    message = str(caught.value)
    assert f"checkpoint {path}" in message and {**BROKEN, **PREDICTION_ONLY}[kind][1] in message, message
    assert "\n" not in message
    assert not MARKER.exists()


FAST_CLI = ("empty", "random_bytes", "no_read_permission", "wrong_dtype")


@pytest.mark.parametrize("kind", [k if k in FAST_CLI else pytest.param(k, marks=pytest.mark.slow) for k in [*BROKEN, *PREDICTION_ONLY]])
def test_predict_cli_with_a_broken_checkpoint_exits_1_with_one_error_line(world_readable_tmp, kind):
    path = broken_model_folder(world_readable_tmp, kind)
    source = new_image(world_readable_tmp)
    (world_readable_tmp / "out").mkdir(mode=0o777)
    (world_readable_tmp / "out").chmod(0o777)
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "predict",
        "--model",
        str(path.parent.parent),
        "--input",
        str(source),
        "--output",
        str(world_readable_tmp / "out"),
    ]
    drop = _without_permission_override if kind == "no_read_permission" and os.geteuid() == 0 else None
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, preexec_fn=drop, check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(errors) == 1 and f"checkpoint {path}" in errors[0] and {**BROKEN, **PREDICTION_ONLY}[kind][1] in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not MARKER.exists()


def test_a_missing_checkpoint_is_named():
    with pytest.raises(CheckpointError, match=r"checkpoint /nonexistent/best.pt does not exist"):
        load_checkpoint("/nonexistent/best.pt")


def test_a_dangling_link_is_a_missing_checkpoint(tmp_path):
    (tmp_path / "best.pt").symlink_to(tmp_path / "gone.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "best.pt")


@pytest.mark.parametrize("err", [EOFError(), RuntimeError(""), KeyError(5), RuntimeError("\n\n"), OSError(13, "Permission denied"), ValueError("x" * 1000)])
def test_the_reason_of_any_exception_is_one_nonempty_line(err):
    reason = error_reason(err)
    assert reason and "\n" not in reason and len(reason) < 250


@pytest.mark.parametrize("kind", [*BROKEN, "no_optimizer"])
def test_resuming_from_a_broken_resume_state_names_the_file(world_readable_tmp, kind):
    from pipeline.training.task import train_task
    from tests.test_training_engine import Toy, _experiment

    toy = Toy(bad=None)
    torch.manual_seed(0)
    state = {"model": toy.build().state_dict(), "architecture": toy.architecture}
    tmp_path = world_readable_tmp
    resume = tmp_path / "fold_0" / "work" / "resume.pt"
    resume.parent.mkdir(parents=True)
    for folder in (resume.parent.parent, resume.parent):
        folder.chmod(0o777)  # the lock file is made by whoever trains
    write, phrase = BROKEN.get(kind, (lambda p, s: torch.save(s, p), "cannot be resumed from"))
    write(resume, state)
    with pytest.raises(CheckpointError) as caught, unprivileged(kind == "no_read_permission"):
        train_task("toy", toy, _experiment(tmp_path), {}, tmp_path / "fold_0", torch.device("cpu"))
    assert f"checkpoint {resume}" in str(caught.value) and phrase in str(caught.value), str(caught.value)


@pytest.mark.parametrize("kind", ["empty", "random_bytes", "forbidden_global", "directory", "no_architecture", "nan_weights"])
def test_init_from_a_broken_checkpoint_names_the_file(tmp_path, kind):
    from pipeline.training.init_from import load_pretrained

    state = segmentation_state()
    source = tmp_path / "models" / "source" / "fold_0" / "best.pt"
    source.parent.mkdir(parents=True)
    write, phrase = BROKEN[kind]
    write(source, state)
    net = build_network(state["architecture"])
    with pytest.raises(CheckpointError) as caught:
        load_pretrained(net, {"init_from": "source", "init_part": "all"}, tmp_path / "models" / "target" / "fold_0")
    assert f"checkpoint {source}" in str(caught.value) and phrase in str(caught.value), str(caught.value)
    assert not MARKER.exists()
