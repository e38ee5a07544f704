"""Throughput of the segmentation models on CPU, next to MONAI's UNet and DynUNet.

For each model and each of 2D (default 8x1x256x256) and 3D (default 2x1x96^3) it reports the
parameter count, training steps per second (forward + Dice-CE loss + backward, no optimizer
step) and inference batches per second (eval mode, no_grad), as a table on stdout and optionally
as TSV. Run from the repository root:

    python workflow/benchmarks/bench_models.py            # full sizes (minutes on a few CPU cores)
    python workflow/benchmarks/bench_models.py --small    # 2x1x64x64 and 1x1x32^3, seconds
    python workflow/benchmarks/bench_models.py --shape3d 1 1 64 64 64 --repeats 2 --tsv bench.tsv

Where segmentation_models_pytorch imports, its 2D DeepLabV3Plus (ResNet-34 and ResNet-18
encoders, random weights) is timed as well. It needs torchvision, which does not import beside
the CPU torch 2.13.0 of this project; run the script from a separate environment instead:

    python -m venv /tmp/smpvenv
    /tmp/smpvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 segmentation-models-pytorch monai
    /tmp/smpvenv/bin/python workflow/benchmarks/bench_models.py --dims 2 --only deeplab

The last column, train samples/s x parameters (M), compares speed per parameter. Rows are timed
one after another; for a ratio that the machine's noise does not move, time two models in turns:

    /tmp/smpvenv/bin/python workflow/benchmarks/bench_models.py --paired "smp-like r34, sep., 1 dec" "resnet34" --rounds 7

``--resize`` times the matrix-product resize of :mod:`pipeline.models.interpolate` against
``torch.nn.functional.interpolate`` (forward + backward, in turns) at the shapes DeepLabV3+ uses.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from monai.networks.nets import DynUNet
from monai.networks.nets import UNet as MonaiUNet
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipeline.losses import build_loss  # noqa: E402
from pipeline.models import build_model  # noqa: E402
from pipeline.models.interpolate import resize  # noqa: E402

NUM_CLASSES = 3
ROW = "{:<4} {:<18} {:<32} {:>8} {:>10} {:>12} {:>10} {:>12} {:>14}"
CHANNELS = (32, 64, 128, 256, 320)


def candidates(spatial_dims: int) -> dict[str, Callable[[], nn.Module]]:
    """Name -> constructor of every model to time (defaults of pipeline.models unless named)."""
    ours = {
        "unet (deconv)": lambda: build_model("unet", spatial_dims, 1, NUM_CLASSES),
        "unet (nontrainable_linear)": lambda: build_model("unet", spatial_dims, 1, NUM_CLASSES, upsample="nontrainable_linear"),
        "unet (residual)": lambda: build_model("unet", spatial_dims, 1, NUM_CLASSES, residual=True),
        "deeplabv3plus (xception, b=16)": lambda: build_model("deeplabv3plus", spatial_dims, 1, NUM_CLASSES),
        "deeplabv3plus (resnet, b=32)": lambda: build_model("deeplabv3plus", spatial_dims, 1, NUM_CLASSES, backbone="resnet", base_channels=32),
        "deeplabv3plus (resnet, b=64)": lambda: build_model("deeplabv3plus", spatial_dims, 1, NUM_CLASSES, backbone="resnet", base_channels=64),
        # smp's DeepLabV3Plus(resnet34) layout: ResNet-34 blocks, batch norm, 256-channel ASPP/decoder.
        "deeplabv3plus (smp-like r34)": lambda: build_model(
            "deeplabv3plus",
            spatial_dims,
            1,
            NUM_CLASSES,
            backbone="resnet",
            base_channels=64,
            resnet_blocks=[3, 4, 6, 3],
            decoder_channels=256,
            norm="batch",
            activation="relu",
        ),
        "deeplabv3plus (smp-like r34, sep.)": lambda: build_model(
            "deeplabv3plus",
            spatial_dims,
            1,
            NUM_CLASSES,
            backbone="resnet",
            base_channels=64,
            resnet_blocks=[3, 4, 6, 3],
            decoder_channels=256,
            norm="batch",
            activation="relu",
            separable_head=True,
        ),
        # ... and smp's decoder: one separable 3x3 refinement instead of the paper's two.
        "deeplabv3plus (smp-like r34, sep., 1 dec. conv)": lambda: build_model(
            "deeplabv3plus",
            spatial_dims,
            1,
            NUM_CLASSES,
            backbone="resnet",
            base_channels=64,
            resnet_blocks=[3, 4, 6, 3],
            decoder_channels=256,
            decoder_convs=1,
            norm="batch",
            activation="relu",
            separable_head=True,
        ),
        "segnet": lambda: build_model("segnet", spatial_dims, 1, NUM_CLASSES),
    }
    monai = {
        "MONAI DynUNet (same filters)": lambda: DynUNet(
            spatial_dims,
            1,
            NUM_CLASSES,
            kernel_size=[3] * len(CHANNELS),
            strides=[1] + [2] * (len(CHANNELS) - 1),
            upsample_kernel_size=[2] * (len(CHANNELS) - 1),
            filters=list(CHANNELS),
        ),
        "MONAI DynUNet (res_block)": lambda: DynUNet(
            spatial_dims,
            1,
            NUM_CLASSES,
            kernel_size=[3] * len(CHANNELS),
            strides=[1] + [2] * (len(CHANNELS) - 1),
            upsample_kernel_size=[2] * (len(CHANNELS) - 1),
            filters=list(CHANNELS),
            res_block=True,
        ),
        "MONAI UNet (2 res units)": lambda: MonaiUNet(
            spatial_dims,
            1,
            NUM_CLASSES,
            channels=CHANNELS,
            strides=[2] * (len(CHANNELS) - 1),
            num_res_units=2,
            norm="instance",
        ),
    }
    others: dict[str, Callable[[], nn.Module]] = {}
    if spatial_dims == 2:
        try:
            import segmentation_models_pytorch as smp
        except ImportError:
            smp = None
        if smp is not None:
            for encoder in ("resnet34", "resnet18"):
                others[f"smp DeepLabV3Plus ({encoder})"] = lambda encoder=encoder: smp.DeepLabV3Plus(
                    encoder_name=encoder, encoder_weights=None, in_channels=1, classes=NUM_CLASSES
                )
    return ours | monai | others


def seconds_per_call(step: Callable[[], None], repeats: int) -> float:
    """Fastest wall time of ``step`` over ``repeats`` calls after one warm-up call.

    The minimum, not the median: on a shared machine other processes only ever add time.
    """
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(model: nn.Module, shape: tuple[int, ...], repeats: int) -> tuple[float, float]:
    """(training steps per second, inference batches per second) of ``model`` on ``shape`` input."""
    train_step = train_step_of(model, shape)
    x = torch.randn(shape)

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    train = 1.0 / seconds_per_call(train_step, repeats)
    return train, 1.0 / seconds_per_call(infer, repeats)


def train_step_of(model: nn.Module, shape: tuple[int, ...]) -> Callable[[], None]:
    """One training step (forward + Dice-CE + backward) of ``model`` on a fixed random batch."""
    x = torch.randn(shape)
    target = torch.randint(0, NUM_CLASSES, (shape[0], 1, *shape[2:]))
    loss_fn = build_loss("dice_ce", None)

    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()

    return step


def in_turns(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each step per round, the steps run one after the other in every round (one
    warm-up round first), so that a slow spell of the machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(rounds + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def paired(names: list[str], dims: int, shape: tuple[int, ...], rounds: int) -> None:
    """Print the training-step time of two models timed in turns and the median of the per-round
    ratios, also per parameter."""
    models = {}
    for wanted in names:
        found = [name for name in candidates(dims) if wanted in name]
        if len(found) != 1:
            raise SystemExit(f"--paired: {wanted!r} must name exactly one model, it matches {found}")
        models[found[0]] = candidates(dims)[found[0]]()
    (a, model_a), (b, model_b) = models.items()
    params = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in models.items()}
    times = in_turns({name: train_step_of(m, shape) for name, m in models.items()}, rounds)
    ratios = [tb / ta for ta, tb in zip(times[a], times[b])]
    for name in models:
        print(f"{name:<48} {params[name]:6.2f} M params, train step {statistics.median(times[name]):.3f} s (median of {rounds})")
    speed = statistics.median(ratios)
    print(f"speed of {a!r} / {b!r}: {speed:.3f} (per-round range {min(ratios):.3f}-{max(ratios):.3f}); per parameter: {speed * params[a] / params[b]:.3f}")


def resize_benchmark(rounds: int) -> None:
    """Forward + backward of our resize against F.interpolate at DeepLabV3+'s shapes."""
    cases = [((8, 256, 16, 16), (64, 64)), ((8, 3, 64, 64), (256, 256)), ((2, 128, 12, 12, 12), (48, 48, 48)), ((2, 3, 24, 24, 24), (96, 96, 96))]
    print(f"{'input':<22} {'output':<12} {'interpolate ms':>15} {'ours ms':>9} {'speed-up':>9}")
    for shape, size in cases:
        x = torch.randn(shape, requires_grad=True)
        mode = "bilinear" if len(size) == 2 else "trilinear"
        steps = {
            "interpolate": lambda: torch.nn.functional.interpolate(x, size=size, mode=mode, align_corners=False).sum().backward(),
            "ours": lambda: resize(x, size).sum().backward(),
        }
        times = in_turns(steps, rounds)
        ratio = statistics.median(t / o for t, o in zip(times["interpolate"], times["ours"]))
        print(
            f"{'x'.join(map(str, shape)):<22} {'x'.join(map(str, size)):<12} "
            f"{1e3 * statistics.median(times['interpolate']):>15.1f} {1e3 * statistics.median(times['ours']):>9.1f} {ratio:>8.2f}x"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="2x1x64x64 and 1x1x32^3 instead of the full sizes")
    parser.add_argument("--shape2d", type=int, nargs=4, metavar=("B", "C", "H", "W"), help="2D input shape")
    parser.add_argument("--shape3d", type=int, nargs=5, metavar=("B", "C", "H", "W", "D"), help="3D input shape")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3], help="which of 2D/3D to run")
    parser.add_argument("--only", nargs="*", help="substrings of model names to run (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (the fastest counts)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--tsv", type=Path, help="also write the table to this TSV file")
    parser.add_argument("--paired", nargs=2, metavar=("A", "B"), help="time two models (name substrings) in turns, 2D")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of --paired and --resize")
    parser.add_argument("--resize", action="store_true", help="time our resize against F.interpolate")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = {2: (2, 1, 64, 64), 3: (1, 1, 32, 32, 32)} if args.small else {2: (8, 1, 256, 256), 3: (2, 1, 96, 96, 96)}
    if args.shape2d:
        shapes[2] = tuple(args.shape2d)
    if args.shape3d:
        shapes[3] = tuple(args.shape3d)
    if args.resize:
        return resize_benchmark(args.rounds)
    if args.paired:
        return paired(args.paired, 2, shapes[2], args.rounds)
    header = (
        "dims",
        "input",
        "model",
        "params_M",
        "train_steps_per_s",
        "train_samples_per_s",
        "infer_batches_per_s",
        "infer_samples_per_s",
        "train_samples_x_params",
    )
    rows = []
    print(f"torch {torch.__version__}, {args.threads} CPU threads, best of {args.repeats} calls after a warm-up", flush=True)
    print(ROW.format(*header[:3], "params M", "train it/s", "train smp/s", "infer it/s", "infer smp/s", "train smp/s*M"), flush=True)
    for dims in args.dims:
        shape = shapes[dims]
        for name, make in candidates(dims).items():
            if args.only and not any(s in name for s in args.only):
                continue
            model = make()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            train, infer = measure(model, shape, args.repeats)
            batch = shape[0]
            row = (
                dims,
                "x".join(map(str, shape)),
                name,
                f"{params:.2f}",
                f"{train:.3f}",
                f"{train * batch:.2f}",
                f"{infer:.3f}",
                f"{infer * batch:.2f}",
                f"{train * batch * params:.1f}",
            )
            rows.append(row)
            print(ROW.format(*row), flush=True)
    if args.tsv:
        args.tsv.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")


if __name__ == "__main__":
    main()
