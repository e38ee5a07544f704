"""Sliding-window inference: speed against bare forward passes and MONAI, and peak memory.

Prints, for a 192x192x160 volume and a 3D U-Net on the CPU (median of --repeats runs, all
in one process so the ratios share the machine's load):
- the bare forward passes of the same windows (the floor),
- ours in fp32 (Gaussian-blended windows, softmax stitched on the CPU),
- monai.inferers.sliding_window_inference in fp32 with the same settings,
- ours with `inference.fast` (bf16 autocast where the CPU has native bf16),
- the Dice between the fp32 and the fast predictions, per class,
- with --mirror, the same with 8-fold mirroring;
then, in a subprocess, the peak memory (ru_maxrss) of predicting a 512x512x300 volume with
14 classes from the preprocessed input to the written NIfTI.

    python workflow/benchmarks/bench_inference.py [--repeats 3] [--small] [--mirror] [--skip-memory | --memory-only]
                                         [--checkpoint best.pt --case results/preprocessed/<case>]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.inferers.utils import dense_patch_slices

from pipeline.evaluation.validation import dice_per_class
from pipeline.inference.sliding_window import sliding_window
from pipeline.models import build_model, build_network
from pipeline.runtime import cpu_has_native_bf16


def volume(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A smooth random 1-channel volume (C, Z, Y, X), float32."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=tuple(max(2, s // 16) for s in shape)).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None, None], size=shape, mode="trilinear", align_corners=False)
    return t[0].numpy()


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        tic = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times), out


@torch.no_grad()
def bare_forward(model: torch.nn.Module, image: np.ndarray, patch: list[int], overlap: float, batch: int) -> None:
    """The model's forward passes over exactly the windows the inferer uses, nothing else."""
    x = torch.from_numpy(image)[None]
    scan = [int(p * (1 - overlap)) or 1 for p in patch]
    slices = dense_patch_slices(x.shape[2:], patch, scan)
    for i in range(0, len(slices), batch):
        windows = torch.cat([x[(slice(None), slice(None), *s)] for s in slices[i : i + batch]])
        torch.softmax(model(windows), dim=1)


def speed(args: argparse.Namespace) -> None:
    shape = (64, 64, 48) if args.small else (192, 192, 160)
    patch = [32, 32, 32] if args.small else [64, 64, 64]
    torch.manual_seed(0)
    model = build_model("unet", 3, 1, 3, channels=[8, 16, 32, 64]).eval()
    image = volume(shape)
    batch, overlap = 2, 0.5
    print(f"volume {shape}, patch {patch}, overlap {overlap}, batch {batch}, threads {torch.get_num_threads()}, native bf16: {cpu_has_native_bf16()}")
    rows = []
    bare_forward(model, image, patch, overlap, batch)  # warm-up: oneDNN builds its kernels per shape
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bare_forward(model, image, patch, overlap, batch)
    t_bare, _ = timed(lambda: bare_forward(model, image, patch, overlap, batch), args.repeats)
    rows.append(("bare forward passes (fp32)", t_bare))
    t_ours, p32 = timed(lambda: sliding_window([model], image, patch, overlap, batch_size=batch), args.repeats)
    rows.append(("ours fp32", t_ours))

    def monai_fp32() -> torch.Tensor:
        with torch.no_grad():
            x = torch.from_numpy(image)[None]
            return sliding_window_inference(x, patch, batch, lambda w: torch.softmax(model(w), 1), overlap=overlap, mode="gaussian")

    t_monai, _ = timed(monai_fp32, args.repeats)
    rows.append(("monai sliding_window_inference fp32", t_monai))
    amp = torch.bfloat16 if cpu_has_native_bf16() else None
    t_fast, pfast = timed(lambda: sliding_window([model], image, patch, overlap, batch_size=batch, amp=amp), args.repeats)
    rows.append((f"ours fast ({'bf16' if amp else 'fp32: no native bf16'})", t_fast))
    if args.mirror:
        t_m32, pm32 = timed(lambda: sliding_window([model], image, patch, overlap, mirror=True, batch_size=batch), 1)
        rows.append(("ours fp32, 8-fold mirroring", t_m32))
        t_mfast, pmfast = timed(lambda: sliding_window([model], image, patch, overlap, mirror=True, batch_size=batch, amp=amp), 1)
        rows.append(("ours fast, 8-fold mirroring", t_mfast))
    for name, seconds in rows:
        print(f"  {name:42s} {seconds:8.2f} s   x{seconds / t_bare:5.2f} of bare   monai/this {t_monai / seconds:5.2f}")
    print(f"  overhead of ours fp32 over the bare forwards: {100 * (t_ours / t_bare - 1):.1f}%")
    dice = dice_per_class(pfast.argmax(0).numpy(), p32.argmax(0).numpy(), 3)
    print(f"  Dice of the fast prediction against the fp32 one, per class: {[round(d, 5) for d in dice]}")
    if args.checkpoint:
        from pipeline.inference.ensemble import load_models

        models, state = load_models([args.checkpoint], build_network, "segmentation")
        plan = state["plan"]
        real = np.load(Path(args.case) / "image.npy")
        p_real = sliding_window(models, real, plan["patch_size"], overlap, batch_size=batch)
        p_real_fast = sliding_window(models, real, plan["patch_size"], overlap, batch_size=batch, amp=amp)
        k = p_real.shape[0]
        agreement = dice_per_class(p_real_fast.argmax(0).numpy(), p_real.argmax(0).numpy(), k)
        print(f"  trained model {args.checkpoint} on {args.case}: Dice fast vs fp32 per class {[round(d, 5) for d in agreement]}")
        if (Path(args.case) / "label.npy").exists():
            reference = np.load(Path(args.case) / "label.npy")
            reference = reference.reshape(p_real.shape[1:])  # (1, *spatial) or (*spatial)
            d32 = dice_per_class(p_real.argmax(0).numpy(), reference, k)
            dfast = dice_per_class(p_real_fast.argmax(0).numpy(), reference, k)
            print(
                f"  Dice against the reference labels per class: fp32 {[round(d, 5) for d in d32]}, fast {[round(d, 5) for d in dfast]}, "
                f"largest difference {max(abs(a - b) for a, b in zip(d32, dfast)):.5f}"
            )
    if args.mirror:
        dice_m = dice_per_class(pmfast.argmax(0).numpy(), pm32.argmax(0).numpy(), 3)
        print(f"  the same with mirroring: {[round(d, 5) for d in dice_m]}")


MEMORY_SCRIPT = """
import json, resource, sys, numpy as np, torch
from pathlib import Path
from pipeline.tasks.segmentation.predict import predict_case
from pipeline.io.images import Geometry
out = Path(sys.argv[1]); shape = tuple(json.loads(sys.argv[2])); k = int(sys.argv[3]); stitcher = sys.argv[4]
torch.manual_seed(0)
model = torch.nn.Conv3d(1, k, 1).eval()
geo = Geometry(size=shape[::-1], spacing=(0.8, 0.8, 1.5), origin=(0.0, 0.0, 0.0), direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
props = {"original_geometry": geo.to_dict(), "cropped_geometry": geo.to_dict(), "resampled_geometry": geo.to_dict(), "crop_box": [[0, s] for s in shape]}
(out / "case").mkdir()
np.save(out / "case" / "image.npy", np.random.default_rng(0).standard_normal(size=(1, *shape), dtype=np.float32))
(out / "case" / "properties.json").write_text(json.dumps(props))
if stitcher == "monai":  # the same prediction with MONAI's inferer doing the stitching
    import pipeline.tasks.segmentation.predict as inference
    from monai.inferers import sliding_window_inference

    def monai_probabilities(models, image, patch, overlap=0.5, mirror=False, batch_size=2, device=None, amp=None, mirror_axes=None, out_dtype=torch.float32, activation="softmax"):
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(image, dtype=np.float32))[None]
            return sliding_window_inference(x, list(patch), batch_size, lambda w: torch.softmax(models[0](w), 1).to(out_dtype), overlap=overlap, mode="gaussian")[0]

    inference.sliding_window = monai_probabilities
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
predict_case([model], out / "case", out / "pred.nii.gz", [128, 128, 128], {"overlap": 0.25, "mirror": False}, k, batch_size=1)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mb": before / 1024}))
"""


def memory(args: argparse.Namespace) -> None:
    """Peak memory of predict_case on a CT-sized volume, ours and with MONAI's stitching."""
    shape = [100, 128, 128] if args.small else [300, 512, 512]
    for stitcher in ("ours", "monai"):
        with tempfile.TemporaryDirectory() as tmp:
            tic = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, tmp, json.dumps(shape), "14", stitcher], capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - tic
        if result.returncode:
            print(result.stderr[-2000:])
            continue
        data = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"peak memory predicting {shape} with 14 classes (preprocessed input to written NIfTI), {stitcher} stitching: "
            f"{data['peak_mb']:.0f} MB (process before predicting: {data['before_mb']:.0f} MB), {seconds:.0f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--mirror", action="store_true", help="also time 8-fold mirroring (8x longer)")
    parser.add_argument("--checkpoint", help="a trained best.pt: also compare fast and fp32 predictions of it ...")
    parser.add_argument("--case", help="... on this preprocessed case folder")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory measurement")
    args = parser.parse_args()
    if not args.memory_only:
        speed(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
