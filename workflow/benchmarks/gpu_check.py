"""The GPU check: one prepared command that runs the pipeline's GPU paths and measures them.

A GPU is lent to this project rarely and for minutes, so this is one script with a time cap
per part, written and tested on the CPU (``--smoke``: the same code at tiny sizes; the test
suite runs it with SimpleITK, nibabel, jsonschema, yaml and Snakemake made unimportable, as
on the GPU machine). Parts:

(a) training step: our U-Net at a GPU-sized patch (128^3, batch 2, the stages, strides and
    widths nnU-Net's rules plan for it, :mod:`pipeline.preprocessing.topology`), bf16
    autocast and channels-last, eager and compiled, against the same network from nnU-Net's
    package (dynamic-network-architectures' ``PlainConvUNet``) and MONAI's ``DynUNet`` on
    the same batches of a synthetic 14-class CT-like volume: iterations per second, peak memory.
(b) inference: the trained U-Net of (a) over the 512x512x300 volume with mirroring, our
    stitcher (:func:`pipeline.inference.sliding_window.sliding_window`) against
    ``monai.inferers.sliding_window_inference`` with the same windows and Gaussian: time,
    peak GPU memory, agreement of the label maps; bf16 against fp32 label maps (Dice).
(c) real data: the brain demo's preprocessed training cases (carried as float16, made by
    ``prepare``) trained by the pipeline's own fold driver
    (:func:`pipeline.training.task.train_task`: loader workers with pinned memory, bf16,
    compiled on CUDA) for a few hundred iterations; the validation Dice, and bf16 against
    fp32 label maps of the trained model on the validation cases.
(d) the same training with two data-parallel processes (``torch.distributed.run``), when
    two GPUs are present (and in ``--smoke``, on the CPU with Gloo).

Usage (from the repository root; ``make gpu-wheels`` / ``make gpu-check`` wrap these)::

    python workflow/benchmarks/gpu_check.py prepare --data .gpu/brain        # here, once
    PYTHONPATH=.:.gpu/site python3 workflow/benchmarks/gpu_check.py run --data .gpu/brain --out gpu_check.md
    python workflow/benchmarks/gpu_check.py smoke                            # prepare + run, tiny, CPU

It prints one markdown table (device, versions, numbers, goals) for RESULTS.md; the exit
status is 1 when a part failed with an error (goals not met are reported, not failed).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The experiment of config/config.yaml that part (c) trains.
EXPERIMENT = "unet_dicece"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Sizes and time caps of one run (numpy axis order, seconds)."""

    train_patch: tuple[int, ...]
    train_batch: int
    base_width: int
    max_width: int
    warmup_steps: int
    timed_steps: int
    fit_steps: int
    volume: tuple[int, ...]
    classes: int
    infer_patch: tuple[int, ...]
    real_epochs: int
    real_iterations: int
    caps: dict[str, float]


FULL = Sizes(
    train_patch=(128, 128, 128),
    train_batch=2,
    base_width=32,
    max_width=320,
    warmup_steps=5,
    timed_steps=30,
    fit_steps=250,
    volume=(300, 512, 512),
    classes=14,
    infer_patch=(128, 128, 128),
    real_epochs=10,
    real_iterations=30,
    caps={"a": 150.0, "b": 150.0, "c": 90.0, "d": 60.0},
)
SMOKE = Sizes(
    train_patch=(16, 16, 16),
    train_batch=2,
    base_width=4,
    max_width=16,
    warmup_steps=1,
    timed_steps=2,
    fit_steps=3,
    volume=(24, 40, 36),
    classes=4,
    infer_patch=(16, 16, 16),
    real_epochs=2,
    real_iterations=2,
    caps={"a": 120.0, "b": 120.0, "c": 120.0, "d": 120.0},
)
#: config/config.yaml made tiny for ``--smoke``: 7 brain cases (one for test) at 8 mm, 3 folds, 16^3 patches.
SMOKE_CONFIG = {
    "demo": {"cases": 7, "test_cases": 1, "spacing_mm": 8.0},
    "plan": {"folds": 3, "patch_voxels": 4096},
    "experiments": {EXPERIMENT: {"model": {"channels": [4, 8, 16]}}},
}


# --------------------------------------------------------------------------- the report


@dataclasses.dataclass
class Report:
    """Rows ``(part, measurement, value, note)`` and the errors of the parts that failed."""

    rows: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    goals: list[tuple[str, bool | None, str]] = dataclasses.field(default_factory=list)

    def add(self, part: str, measurement: str, value: str, note: str = "") -> None:
        self.rows.append((part, measurement, value, note))
        print(f"  ({part}) {measurement}: {value} {note}", flush=True)

    def goal(self, text: str, met: bool | None, detail: str) -> None:
        self.goals.append((text, met, detail))

    @contextlib.contextmanager
    def part(self, name: str, title: str) -> Iterator[None]:
        """Run a part; an error becomes a row and an entry of :attr:`errors`, and the next part runs."""
        print(f"part ({name}): {title}", flush=True)
        tic = time.perf_counter()
        try:
            yield
        except Exception as err:  # noqa: BLE001 - every failure of a part is reported, the others still run
            traceback.print_exc()
            self.errors.append(f"({name}) {type(err).__name__}: {err}")
            self.add(name, "error", f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
        self.add(name, "part time", f"{time.perf_counter() - tic:.1f} s")

    def markdown(self, header: Sequence[str]) -> str:
        lines = [*header, "", "| part | measurement | value | note |", "| --- | --- | --- | --- |"]
        lines += [f"| {p} | {m} | {v} | {n} |" for p, m, v, n in self.rows]
        if self.goals:
            lines += ["", "| goal | met | measured |", "| --- | --- | --- |"]
            lines += [f"| {t} | {'n/a' if m is None else ('yes' if m else 'NO')} | {d} |" for t, m, d in self.goals]
        if self.errors:
            lines += ["", "Errors:", *[f"- {e}" for e in self.errors]]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- device helpers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> int:
    """Start counting the peak GPU memory; returns the bytes already allocated (0 on the CPU)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def peak_bytes(device: torch.device, baseline: int) -> int:
    """Peak GPU memory allocated since :func:`reset_peak` above its ``baseline``, in bytes."""
    return torch.cuda.max_memory_allocated(device) - baseline if device.type == "cuda" else 0


def peak_gb(device: torch.device, baseline: int) -> str:
    """:func:`peak_bytes` in GB; ``n/a`` on the CPU."""
    return f"{peak_bytes(device, baseline) / 1e9:.2f} GB" if device.type == "cuda" else "n/a (CPU)"


def header(device: torch.device, sizes: Sizes) -> list[str]:
    """Device, versions and sizes, the lines above the table."""
    import monai

    try:
        import dynamic_network_architectures as dna

        dna_version = getattr(dna, "__version__", None) or _dist_version("dynamic-network-architectures")
    except ImportError:
        dna_version = "not installed"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} GPU(s), CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        name = f"CPU ({os.cpu_count()} cores), {torch.get_num_threads()} torch threads"
    mode = "smoke (tiny sizes)" if sizes is SMOKE else "full"
    return [
        f"## GPU check, {datetime.date.today().isoformat()} ({mode})",
        "",
        f"Device: {name}. Python {platform.python_version()}, torch {torch.__version__}, monai {monai.__version__}, "
        f"dynamic-network-architectures {dna_version}. Command: `{' '.join(sys.argv)}`.",
    ]


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- (a) training step


def synthetic_ct(shape: Sequence[int], classes: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A CT-like 3D volume: ``classes - 1`` overlapping ellipsoids of distinct intensity on a
    background, with noise. Returns ``image (1, *shape)`` float32 and ``label (*shape)`` int64."""
    g = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(0, 1, n, device=device) for n in shape]
    label = torch.zeros(tuple(shape), dtype=torch.int64, device=device)
    for k in range(1, classes):
        centre = 0.2 + 0.6 * torch.rand(3, generator=g)
        radius = 0.08 + 0.17 * torch.rand(3, generator=g)
        z, y, x = (((a - float(c)) / float(r)) ** 2 for a, c, r in zip(axes, centre, radius))
        label[(z[:, None, None] + y[None, :, None] + x[None, None, :]) <= 1] = k  # broadcast: no coordinate grids
    levels = torch.linspace(-1.5, 1.5, classes)[torch.randperm(classes, generator=g)].to(device)
    image = levels[label] + 0.35 * torch.randn(tuple(shape), generator=torch.Generator(device).manual_seed(seed), device=device)
    return image[None].float(), label


def random_crops(image: torch.Tensor, label: torch.Tensor, patch: Sequence[int], batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random ``patch`` crops: ``(B, 1, *patch)`` image, ``(B, 1, *patch)`` label."""
    xs, ys = [], []
    for _ in range(batch):
        start = [int(rng.integers(0, n - p + 1)) for n, p in zip(label.shape, patch)]
        window = tuple(slice(s, s + p) for s, p in zip(start, patch))
        xs.append(image[(slice(None), *window)])
        ys.append(label[window][None])
    return torch.stack(xs), torch.stack(ys)


def unet_layout(sizes: Sizes, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Strides, kernels and widths that nnU-Net's rules plan for the training patch."""
    from pipeline.preprocessing.topology import pool_and_kernels, stage_widths

    topo = pool_and_kernels(spacing, sizes.train_patch)
    return topo.strides, topo.kernels, stage_widths(topo.stages, sizes.base_width, sizes.max_width)


def build_networks(sizes: Sizes) -> dict[str, Callable[[], torch.nn.Module] | str]:
    """Builders of the three same-size U-Nets (or why one is missing)."""
    from monai.networks.nets import DynUNet

    from pipeline.models import build_network

    strides, kernels, widths = unet_layout(sizes)
    dims = len(sizes.train_patch)
    builders: dict[str, Callable[[], torch.nn.Module] | str] = {
        "ours (pipeline U-Net)": lambda: build_network(
            {
                "model": {"name": "unet", "channels": widths, "strides": strides, "kernel_size": kernels},
                "spatial_dims": dims,
                "in_channels": 1,
                "num_classes": sizes.classes,
            }
        ),
    }
    try:
        from dynamic_network_architectures.architectures.unet import PlainConvUNet
    except ImportError as err:
        builders["nnU-Net PlainConvUNet"] = f"not installed ({err}); make gpu-wheels carries it"
    else:
        conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
        norm = torch.nn.InstanceNorm3d if dims == 3 else torch.nn.InstanceNorm2d
        builders["nnU-Net PlainConvUNet"] = lambda: PlainConvUNet(
            1,
            len(widths),
            widths,
            conv,
            kernels,
            [[1] * dims, *strides],
            2,
            sizes.classes,
            2,
            conv_bias=True,
            norm_op=norm,
            norm_op_kwargs={"eps": 1e-5, "affine": True},
            nonlin=torch.nn.LeakyReLU,
            nonlin_kwargs={"inplace": True},
            deep_supervision=False,
        )
    builders["MONAI DynUNet"] = lambda: DynUNet(
        dims, 1, sizes.classes, kernels, [[1] * dims, *strides], strides, filters=widths, norm_name="instance", deep_supervision=False, res_block=False
    )
    return builders


def time_training(
    build: Callable[[], torch.nn.Module],
    data: tuple[torch.Tensor, torch.Tensor],
    sizes: Sizes,
    device: torch.device,
    compiled: bool,
    steps: int,
    deadline: float,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train a new network (seed 0) on random crops of ``data``: ``warmup_steps`` untimed
    (compilation), then up to ``steps`` timed ones (stopping at ``deadline``). The loss is
    the pipeline's Dice + cross-entropy, the optimizer nnU-Net's SGD; bf16 autocast and
    channels-last on CUDA. Returns the network and ``{first_s, it_per_s, steps, peak, loss, params}``."""
    from pipeline.losses import build_loss
    from pipeline.models.heads import first_output
    from pipeline.runtime import amp_dtype, autocast, maybe_compile, memory_format

    torch.manual_seed(0)
    dims = len(sizes.train_patch)
    layout = memory_format(dims, device)
    net = build().to(device, memory_format=layout)
    model = maybe_compile(net, compiled)
    amp = amp_dtype(device, True)
    loss_fn = build_loss("dice_ce", None).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    rng = np.random.default_rng(0)
    net.train()

    def step() -> float:
        x, y = random_crops(*data, sizes.train_patch, sizes.train_batch, rng)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = loss_fn(first_output(model(x.contiguous(memory_format=layout))), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        optimizer.step()
        return float(loss.detach())

    baseline = reset_peak(device)
    tic = time.perf_counter()
    for _ in range(sizes.warmup_steps):
        step()
    synchronize(device)
    first = time.perf_counter() - tic
    tic, done, loss = time.perf_counter(), 0, math.nan
    while done < steps and (done == 0 or time.perf_counter() < deadline):
        loss = step()
        done += 1
    synchronize(device)
    seconds = time.perf_counter() - tic
    params = sum(p.numel() for p in net.parameters())
    return net, {"first_s": first, "it_per_s": done / seconds, "steps": done, "peak": peak_gb(device, baseline), "loss": loss, "params": params}


def part_a(report: Report, sizes: Sizes, device: torch.device, state: dict[str, Any]) -> None:
    """(a): iterations per second and peak memory of the three U-Nets, eager and compiled."""
    deadline = time.perf_counter() + sizes.caps["a"]
    tic = time.perf_counter()
    data = synthetic_ct(sizes.volume, sizes.classes, device)
    synchronize(device)
    state["data"] = data
    report.add(
        "a",
        "synthetic CT volume",
        f"{'x'.join(map(str, sizes.volume))}, {sizes.classes} classes",
        f"made on the {device.type} in {time.perf_counter() - tic:.1f} s",
    )
    strides, kernels, widths = unet_layout(sizes)
    report.add(
        "a",
        "network (all three)",
        f"{len(widths)} stages, widths {widths}",
        f"patch {list(sizes.train_patch)}, batch {sizes.train_batch}, bf16 + channels-last on CUDA",
    )
    variants = [False, True] if device.type == "cuda" else [False]
    speeds: dict[tuple[str, bool], float] = {}
    for compiled in variants:
        for name, build in build_networks(sizes).items():
            label = f"{name}, {'compiled' if compiled else 'eager'}"
            if isinstance(build, str):
                report.add("a", label, "skipped", build)
                continue
            if time.perf_counter() > deadline:
                report.add("a", label, "skipped", f"time cap of {sizes.caps['a']:.0f} s reached")
                continue
            net, r = time_training(build, data, sizes, device, compiled, sizes.timed_steps, deadline)
            speeds[(name, compiled)] = r["it_per_s"]
            report.add(
                "a",
                label,
                f"{r['it_per_s']:.2f} it/s, peak {r['peak']}",
                f"{r['params'] / 1e6:.2f} M parameters; {r['steps']} timed steps, the first {sizes.warmup_steps} took {r['first_s']:.1f} s; loss {r['loss']:.3f}",
            )
            if name.startswith("ours") and not compiled:
                state["net"] = net
            del net
    if device.type != "cuda":
        report.add("a", "compiled variants", "skipped on the CPU", "tests/test_training.py covers torch.compile on the CPU")
    ours = max((v for (n, _), v in speeds.items() if n.startswith("ours")), default=None)
    nnunet = max((v for (n, _), v in speeds.items() if n.startswith("nnU-Net")), default=None)
    if ours is not None and nnunet is not None:
        met = ours >= nnunet if device.type == "cuda" else None
        report.goal("(a) our training step at least as fast as nnU-Net's network", met, f"{ours:.2f} vs {nnunet:.2f} it/s (best of eager/compiled each)")
    else:
        report.goal("(a) our training step at least as fast as nnU-Net's network", None, "nnU-Net's network not measured")
    # Train the eager U-Net on (the crops of) the volume, so that (b) predicts with a network that has learned something.
    if "net" in state and sizes.fit_steps:  # at most 30 s over the cap
        tic, net = time.perf_counter(), state["net"]
        state["net"], r = time_training(lambda: net, data, dataclasses.replace(sizes, warmup_steps=0), device, False, sizes.fit_steps, max(deadline, tic + 30))
        report.add("a", "U-Net trained further for (b)", f"{r['steps']} steps, loss {r['loss']:.3f}", f"{time.perf_counter() - tic:.1f} s")


# --------------------------------------------------------------------------- (b) inference


def label_dice(a: torch.Tensor, b: torch.Tensor, classes: int) -> float:
    """Mean Dice over the classes present in either of two label maps (same shape, int)."""
    pairs = (
        torch.bincount((a.reshape(-1).long() * classes + b.reshape(-1).long()).to(torch.int64), minlength=classes * classes).reshape(classes, classes).double()
    )
    inter, total = pairs.diag(), pairs.sum(0) + pairs.sum(1)
    present = total > 0
    return float((2 * inter[present] / total[present]).mean())


def mirrored_softmax(net: torch.nn.Module, dims: int, amp: torch.dtype | None, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """A MONAI predictor: the softmax averaged over every flip of the window (as ours mirrors)."""
    import itertools

    from pipeline.models.heads import first_output
    from pipeline.runtime import autocast

    flips = [()] + [c for r in range(1, dims + 1) for c in itertools.combinations(range(2, dims + 2), r)]

    def predict(x: torch.Tensor) -> torch.Tensor:
        total = None
        for axes in flips:
            with autocast(device, amp):
                logits = first_output(net(torch.flip(x, axes) if axes else x)).float()
            p = torch.softmax(logits, 1)
            p = torch.flip(p, axes) if axes else p
            total = p if total is None else total.add_(p)
        assert total is not None
        return total / len(flips)

    return predict


def part_b(report: Report, sizes: Sizes, device: torch.device, state: dict[str, Any]) -> None:
    """(b): our stitcher against MONAI's over the CT-sized volume; bf16 against fp32."""
    from monai.inferers import sliding_window_inference

    from pipeline.inference.sliding_window import sliding_window, stitch_dtype
    from pipeline.runtime import amp_dtype, autocast

    deadline = time.perf_counter() + sizes.caps["b"]
    if "net" not in state:
        raise RuntimeError("part (a) left no trained U-Net")
    net, (image, label) = state.pop("net").eval(), state.pop("data")
    volume, label = image.cpu().numpy(), label.cpu()  # on the CPU, as a case's image is before prediction
    del image
    dims, patch = len(sizes.volume), list(sizes.infer_patch)
    amp = amp_dtype(device, True)
    out_dtype = stitch_dtype(sizes.volume, sizes.classes)
    report.add(
        "b",
        "volume",
        f"{'x'.join(map(str, sizes.volume))}, {sizes.classes} classes",
        f"patch {patch}, overlap 0.5, batch 2, mirroring on {2**dims} flips, {'bf16' if amp else 'fp32'}",
    )

    baseline = reset_peak(device)
    tic = time.perf_counter()
    ours = sliding_window([net], volume, patch, 0.5, True, 2, device, amp, out_dtype=out_dtype).argmax(0)
    ours_s = time.perf_counter() - tic
    ours_peak, ours_bytes = peak_gb(device, baseline), peak_bytes(device, baseline)
    report.add(
        "b",
        "ours: time, peak GPU memory",
        f"{ours_s:.1f} s, {ours_peak}",
        f"stitched on the CPU in {str(out_dtype).replace('torch.', '')}; Dice vs the volume's labels {label_dice(ours, label, sizes.classes):.4f}",
    )

    baseline = reset_peak(device)
    tic = time.perf_counter()
    with torch.no_grad(), autocast(device, amp):
        monai_out = sliding_window_inference(
            torch.from_numpy(volume)[None].to(device),
            patch,
            2,
            mirrored_softmax(net, dims, amp, device),
            overlap=0.5,
            mode="gaussian",
            sigma_scale=0.125,
            sw_device=device,
            device=device,
        )
        theirs = monai_out[0].argmax(0).cpu()
    synchronize(device)
    monai_s = time.perf_counter() - tic
    monai_peak, monai_bytes = peak_gb(device, baseline), peak_bytes(device, baseline)
    del monai_out
    report.add(
        "b",
        "MONAI sliding_window_inference: time, peak GPU memory",
        f"{monai_s:.1f} s, {monai_peak}",
        "the same windows, Gaussian and flips; input and float32 sums on the GPU",
    )
    report.add("b", "ours vs MONAI label maps", f"Dice {label_dice(ours, theirs, sizes.classes):.5f}", "")
    met = ours_s * 1.5 <= monai_s and (device.type != "cuda" or ours_bytes <= monai_bytes)
    report.goal(
        "(b) inference at least 1.5x MONAI's speed, no more GPU memory",
        met if device.type == "cuda" else None,
        f"{monai_s / ours_s:.2f}x, {ours_peak} vs {monai_peak}",
    )
    del theirs
    if time.perf_counter() > deadline:
        report.add("b", "bf16 vs fp32", "skipped", f"time cap of {sizes.caps['b']:.0f} s reached")
        return
    tic = time.perf_counter()
    low = sliding_window([net], volume, patch, 0.5, False, 2, device, amp, out_dtype=out_dtype).argmax(0)
    full = sliding_window([net], volume, patch, 0.5, False, 2, device, None, out_dtype=out_dtype).argmax(0)
    agreement = label_dice(low, full, sizes.classes)
    report.add("b", "bf16 vs fp32 label maps (no mirroring)", f"Dice {agreement:.5f}", f"{time.perf_counter() - tic:.1f} s for both")
    report.goal(
        "(b) bf16 and fp32 label maps agree (Dice >= 0.999), CT-sized volume",
        agreement >= 0.999 if amp else None,
        f"{agreement:.5f}" + ("" if amp else " (fp32 on both sides: CPU)"),
    )


# --------------------------------------------------------------------------- (c), (d) real data


def unpack(data: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Path]:
    """Expand the carried cases into preprocessed case folders (float32) under ``work``.
    Returns ``(config, plan, split of fold 0, preprocessed folder)``."""
    config = json.loads((data / "config.json").read_text(encoding="utf-8"))
    plan = json.loads((data / "plans.json").read_text(encoding="utf-8"))
    split = json.loads((data / "splits.json").read_text(encoding="utf-8"))[0]
    pre = work / "preprocessed"
    for case in [*split["train"], *split["val"]]:
        folder = pre / case
        folder.mkdir(parents=True, exist_ok=True)
        with np.load(data / "cases" / f"{case}.npz") as arrays:
            np.save(folder / "image.npy", arrays["image"].astype(np.float32))
            np.save(folder / "label.npy", arrays["label"])
        shutil.copyfile(data / "cases" / f"{case}.json", folder / "properties.json")
    (work / "unpacked.json").write_text(json.dumps([config, plan, split, str(pre)]), encoding="utf-8")
    return config, plan, split, pre


def real_experiment(config: dict[str, Any], sizes: Sizes, device: torch.device) -> dict[str, Any]:
    """The demo's U-Net experiment set for the check: its budget, bf16, compiled on CUDA,
    loader workers (one on the CPU, so the worker path runs there too), no mirror decision."""
    config = copy.deepcopy(config)
    experiment = config["experiments"][EXPERIMENT]
    experiment["training"].update(
        epochs=sizes.real_epochs,
        iterations_per_epoch=sizes.real_iterations,
        validate_every=sizes.real_epochs,
        checkpoint_every=sizes.real_epochs,
        amp=True,
        compile=device.type == "cuda",
        num_workers="auto" if device.type == "cuda" else 1,
    )
    experiment.setdefault("inference", {})["mirror"] = False
    return config


def train_real(work: Path, sizes: Sizes, device: torch.device | None) -> list[dict[str, Any]]:
    """Train fold 0 of the cases :func:`unpack` expanded in ``work`` with the pipeline's own
    fold driver (``work/fold_0``); the log rows."""
    from pipeline.tasks.segmentation.train import SegmentationTraining
    from pipeline.training.task import train_task

    config, plan, split, pre = json.loads((work / "unpacked.json").read_text(encoding="utf-8"))
    config = real_experiment(config, sizes, device or torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    spec = SegmentationTraining(config, EXPERIMENT, plan, split, pre)
    rows = train_task(EXPERIMENT, spec, config["experiments"][EXPERIMENT], plan, work / "fold_0", device)
    return rows.to_dict("records")


def part_c(report: Report, sizes: Sizes, device: torch.device, data: Path, work: Path) -> None:
    """(c): the demo's U-Net trained on the real cases; validation Dice; bf16 vs fp32."""
    from pipeline.evaluation.validation import dice_per_class
    from pipeline.inference.sliding_window import sliding_window
    from pipeline.models import build_network
    from pipeline.preprocessing.case_folder import PreprocessedCase
    from pipeline.runtime import amp_dtype
    from pipeline.training.checkpoint import load_checkpoint

    config, plan, split, pre = unpack(data, work / "c")
    report.add(
        "c",
        "data",
        f"{len(split['train'])} training, {len(split['val'])} validation cases",
        f"{config['dataset']['name']}; patch {plan['patch_size']}, batch {plan['batch_size']}",
    )
    tic = time.perf_counter()
    rows = train_real(work / "c", sizes, device)
    seconds = time.perf_counter() - tic
    iterations = sizes.real_epochs * sizes.real_iterations
    last = rows[-1]
    dice = {k.removeprefix("val_dice_"): v for k, v in last.items() if k.startswith("val_dice_") and k != "val_dice_mean"}
    report.add(
        "c",
        "training",
        f"{iterations} iterations in {seconds:.1f} s",
        f"{sum(r['seconds'] for r in rows) / iterations * 1000:.0f} ms per iteration in the loop; compile {device.type == 'cuda'}",
    )
    report.add("c", "validation Dice", f"mean {last['val_dice_mean']:.4f}", ", ".join(f"{k} {v:.4f}" for k, v in dice.items()))
    state = load_checkpoint(work / "c" / "fold_0" / "best.pt")
    net = build_network(state["architecture"])
    net.load_state_dict(state["model"])
    net = net.to(device).eval()
    amp, classes, patch, batch = amp_dtype(device, True), len(plan["labels"]), plan["patch_size"], plan["batch_size"]
    agreements, scores = [], []
    for case in (PreprocessedCase(pre / c) for c in split["val"]):
        image = np.asarray(case.image)
        low = sliding_window([net], image, patch, 0.5, False, batch, device, amp).argmax(0)
        full = sliding_window([net], image, patch, 0.5, False, batch, device, None).argmax(0)
        agreements.append(label_dice(low, full, classes))
        scores.append(np.nanmean(dice_per_class(low.numpy(), np.asarray(case.label), classes)))
    dice_bf16 = float(np.mean(scores))
    report.add(
        "c",
        "bf16 vs fp32 label maps, validation cases",
        f"Dice {min(agreements):.5f} (lowest)",
        f"validation Dice at overlap 0.5, {'bf16' if amp else 'fp32'}: {dice_bf16:.4f}",
    )
    report.goal("(c) bf16 and fp32 label maps agree (Dice >= 0.999), trained brain U-Net", min(agreements) >= 0.999 if amp else None, f"{min(agreements):.5f}")
    report.goal(
        "(c) mixed-precision training learns (validation Dice >= 0.8)", last["val_dice_mean"] >= 0.8 if sizes is FULL else None, f"{last['val_dice_mean']:.4f}"
    )


def part_d(report: Report, sizes: Sizes, device: torch.device, data: Path, work: Path) -> None:
    """(d): the same training with two data-parallel processes."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and gpus < 2:
        report.add("d", "two data-parallel processes", "skipped", f"{gpus} GPU on this machine")
        return
    unpack(data, work / "d")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, "worker", "--work", str(work / "d")]
    command += ["--smoke"] if sizes is SMOKE else []
    tic = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=sizes.caps["d"], check=False)
    if result.returncode != 0:
        raise RuntimeError(f"torch.distributed.run exited with {result.returncode}: {result.stderr[-1500:]}")
    rows = json.loads((work / "d" / "rows.json").read_text(encoding="utf-8"))
    report.add(
        "d",
        "two data-parallel processes",
        f"validation Dice {rows[-1]['val_dice_mean']:.4f}",
        f"{time.perf_counter() - tic:.1f} s; {'NCCL' if gpus else 'Gloo on the CPU'}; replicas checked identical",
    )


# --------------------------------------------------------------------------- prepare


def prepare(data: Path, smoke: bool) -> None:
    """Make the carried cases of part (c): the brain demo (config/config.yaml; tiny with
    ``smoke``) generated, checked, planned and preprocessed by the pipeline's own stages,
    the training cases of fold 0 stored as float16 images and uint8 labels."""
    from pipeline import stages
    from pipeline.config import load_config
    from pipeline.io.dataset import dataset_table

    data = data.resolve()
    config = load_config(ROOT / "config" / "config.yaml", SMOKE_CONFIG if smoke else None)
    with tempfile.TemporaryDirectory(prefix="gpu_check_prepare_") as tmp, _cwd(Path(tmp)):
        stages.make_demo_manifest(config, f"results/demo/{config['dataset']['demo']}/manifest.tsv")
        cases = [str(c) for c, row in dataset_table(config).iterrows() if row["split"] == "train"]
        checks = []
        for case in cases:
            stages.make_demo_case(config, case)
            checks.append(f"results/cases/{case}/check.json")
            stages.check(config, case, checks[-1])
        stages.fingerprint(config, checks, "results/plans/fingerprint.json")
        stages.plan(config, "results/plans/fingerprint.json", "results/plans/plans.json", "results/plans/splits.json")
        if data.exists():
            shutil.rmtree(data)
        (data / "cases").mkdir(parents=True)
        for case in cases:
            stages.preprocess(config, case, "results/plans/plans.json", f"results/preprocessed/{case}", f"results/cases/{case}/check.json")
            folder = Path("results/preprocessed") / case
            image = np.load(folder / "image.npy")
            np.savez_compressed(data / "cases" / f"{case}.npz", image=image.astype(np.float16), label=np.load(folder / "label.npy"))
            shutil.copyfile(folder / "properties.json", data / "cases" / f"{case}.json")
        for name in ("plans.json", "splits.json"):
            shutil.copyfile(Path("results/plans") / name, data / name)
    (data / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True), encoding="utf-8")
    total = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    print(f"prepared {len(cases)} cases in {data} ({total / 1e6:.1f} MB)")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


# --------------------------------------------------------------------------- main


def run(data: Path, out: Path | None, smoke: bool, parts: str) -> int:
    """Run the parts; print (and write to ``out``) the markdown table; 1 if a part failed."""
    sizes = SMOKE if smoke else FULL
    from pipeline.runtime import select_device

    device = select_device()
    if smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    report = Report()
    state: dict[str, Any] = {}
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        if "a" in parts:
            with report.part("a", "training step: ours vs nnU-Net's and MONAI's U-Net"):
                part_a(report, sizes, device, state)
        if "b" in parts:
            with report.part("b", "sliding-window inference: ours vs MONAI's"):
                part_b(report, sizes, device, state)
        state.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if "c" in parts:
            with report.part("c", "training on the brain demo's cases"):
                part_c(report, sizes, device, data, work)
        if "d" in parts:
            with report.part("d", "two data-parallel processes"):
                part_d(report, sizes, device, data, work)
    report.add("all", "total time", f"{time.perf_counter() - tic:.1f} s", "")
    text = report.markdown(header(device, sizes))
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return 1 if report.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="make the carried cases of part (c) (here, with the I/O libraries)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--smoke", action="store_true")
    r = sub.add_parser("run", help="run the check on the carried cases")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path)
    r.add_argument("--smoke", action="store_true")
    r.add_argument("--parts", default="abcd")
    s = sub.add_parser("smoke", help="prepare tiny cases and run the check on the CPU")
    s.add_argument("--out", type=Path)
    w = sub.add_parser("worker", help="(internal) one process of part (d), started by torch.distributed.run")
    w.add_argument("--work", type=Path, required=True)
    w.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.data, args.smoke)
        return 0
    if args.command == "run":
        return run(args.data, args.out, args.smoke, args.parts)
    if args.command == "worker":
        if args.smoke:
            torch.set_num_threads(1)
        rows = train_real(args.work, SMOKE if args.smoke else FULL, None)
        if int(os.environ.get("RANK", "0")) == 0:
            (args.work / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu_check_smoke_") as tmp:
        prepare(Path(tmp) / "data", smoke=True)
        return run(Path(tmp) / "data", args.out, True, "abcd")


if __name__ == "__main__":
    sys.exit(main())
