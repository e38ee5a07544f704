"""Benchmark of pipeline.evaluation against MONAI and SimpleITK on realistic synthetic volumes.

Run: ``python workflow/benchmarks/bench_evaluation.py`` (full: 512x512x200 at (0.8, 0.8, 2.5) mm and
256^3 at 1 mm, 3 classes) or ``--small`` (both volumes 4x coarser, seconds). Prints, per volume,
the median of ``--repeats`` wall times of

- ours: ``evaluate_case`` (all classes; Dice, IoU, precision, recall, volumes, HD, HD95, ASSD, NSD),
- the distance stage alone two ways: KD-tree on boundary points (what ``evaluate_case`` uses)
  and an exact EDT over each class's cropped bounding box (the alternative we measured),
- MONAI: one-hot + ``compute_hausdorff_distance`` (max and percentile=95) +
  ``compute_average_surface_distance`` + ``compute_dice``,
- SimpleITK: ``LabelOverlapMeasuresImageFilter`` + ``HausdorffDistanceImageFilter`` per class,

the speed-up ratios, the largest differences to MONAI, and our peak memory (peak RSS, VmHWM, of
a child process that loads the two arrays and runs ``evaluate_case``). All libraries run with
``--threads`` threads (default 1) so the ratios compare algorithms, not core counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.evaluation import evaluate_case  # noqa: E402
from pipeline.evaluation.case import FIRST_QUERY_BOUND_VOXELS  # noqa: E402
from pipeline.evaluation.surface import (  # noqa: E402
    boundary_mask,
    boundary_points_by_label,
    directed_distances,
    make_tree,
    physical_points,
)

LABELS = {0: "background", 1: "organ", 2: "lesion", 3: "kidney"}
VOLUMES = {  # name: (shape, spacing mm)
    "512x512x200": ((512, 512, 200), (0.8, 0.8, 2.5)),
    "256^3": ((256, 256, 256), (1.0, 1.0, 1.0)),
}


def smooth_noise(shape, spacing, rng, wavelength_mm, n_terms=6) -> np.ndarray:
    """Sum of random separable low-frequency sinusoids, float32, roughly in [-1, 1]."""
    axes = [np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing)]
    out = np.zeros(shape, np.float32)
    for _ in range(n_terms):
        term = np.float32(rng.uniform(0.5, 1.0) / n_terms * 2)
        for ax, x in enumerate(axes):
            wave = np.sin(2 * np.pi / rng.uniform(*wavelength_mm) * x + rng.uniform(0, 2 * np.pi))
            term = term * wave.astype(np.float32).reshape([-1 if i == ax else 1 for i in range(len(shape))])
        out += term
    return out


def make_pair(shape, spacing, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Reference: three smooth deformed ellipsoids (organ, lesion inside it, kidney);
    prediction: the same with boundaries moved by smaller-scale noise, plus five spurious
    islands (4 mm balls, random classes) anywhere in the volume."""
    rng = np.random.default_rng(seed)
    ext = np.asarray(shape) * np.asarray(spacing)
    axes = [np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing)]

    def ellipsoid(centre_mm, radii_mm) -> np.ndarray:
        q = np.float32(0)
        for i, x in enumerate(axes):
            v = ((x - centre_mm[i]) / radii_mm[i]) ** 2
            q = q + v.reshape([-1 if j == i else 1 for j in range(len(shape))])
        return q

    shape_noise = smooth_noise(shape, spacing, rng, (60, 200))
    error_noise = smooth_noise(shape, spacing, rng, (15, 60))
    specs = [((0.5, 0.45, 0.5), (0.3, 0.25, 0.3)), ((0.5, 0.45, 0.5), (0.12, 0.1, 0.12)),
             ((0.5, 0.78, 0.5), (0.1, 0.08, 0.12))]  # fmt: skip
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for label, (centre, radii) in enumerate(specs, start=1):
        q = ellipsoid(np.multiply(centre, ext), np.multiply(radii, ext)) + 0.3 * shape_noise
        ref[q < 1] = label
        pred[q + 0.15 * error_noise < 1] = label
    radius = max(4.0, 1.5 * max(spacing))
    for _ in range(5):
        pred[ellipsoid(rng.uniform(0.05, 0.95, 3) * ext, [radius] * 3) < 1] = rng.integers(1, 4)
    return ref, pred


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def kdtree_distances(ref, pred, spacing, k=4) -> dict[int, float]:
    """Distance stage as evaluate_case runs it; returns HD per class (mm)."""
    sp = np.asarray(spacing, float)
    edges = [boundary_mask(ref), boundary_mask(pred)]
    points = [boundary_points_by_label(a, e, k) for a, e in zip((ref, pred), edges)]
    bound, hd = FIRST_QUERY_BOUND_VOXELS * sp.max(), {}
    for c in range(1, k):
        fr, fp = points[0][c], points[1][c]
        pr, pp = physical_points(fr, ref.shape, sp), physical_points(fp, ref.shape, sp)
        zero_r = edges[1].reshape(-1)[fr] & (pred.reshape(-1)[fr] == c)
        zero_p = edges[0].reshape(-1)[fp] & (ref.reshape(-1)[fp] == c)
        d1 = directed_distances(pp, make_tree(pr), zero_p, bound)
        d2 = directed_distances(pr, make_tree(pp), zero_r, bound)
        hd[c] = float(max(d1.max(), d2.max()))
    return hd


def cropped_edt_distances(ref, pred, spacing, k=4) -> dict[int, float]:
    """Alternative distance stage: exact EDT (scipy) over each class's union bounding box + 1."""
    hd = {}
    for c in range(1, k):
        r, p = ref == c, pred == c
        union = r | p
        box = []
        for ax in range(ref.ndim):
            hits = np.flatnonzero(union.any(axis=tuple(i for i in range(ref.ndim) if i != ax)))
            box.append(slice(max(hits[0] - 1, 0), hits[-1] + 2))
        rb = boundary_mask(r[tuple(box)].view(np.uint8))
        pb = boundary_mask(p[tuple(box)].view(np.uint8))
        d1 = ndi.distance_transform_edt(~rb, sampling=spacing)[pb]
        d2 = ndi.distance_transform_edt(~pb, sampling=spacing)[rb]
        hd[c] = float(max(d1.max(), d2.max()))
    return hd


def run_monai(ref, pred, spacing, k=4) -> dict[str, np.ndarray]:
    import torch
    from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance

    one_hot = [torch.from_numpy(np.stack([a == c for c in range(1, k)])[None]) for a in (pred, ref)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {
            "hd": compute_hausdorff_distance(*one_hot, include_background=True, spacing=spacing),
            "hd95": compute_hausdorff_distance(*one_hot, include_background=True, spacing=spacing, percentile=95),
            "assd": compute_average_surface_distance(*one_hot, include_background=True, spacing=spacing, symmetric=True),
            "dice": compute_dice(*one_hot, include_background=True),
        }
    return {key: value.numpy()[0] for key, value in out.items()}


def run_sitk(ref, pred, spacing, k=4) -> dict[str, list[float]]:
    import SimpleITK as sitk

    def image(a):
        img = sitk.GetImageFromArray(a)
        img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
        return img

    ref_img, pred_img = image(ref), image(pred)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(pred_img, ref_img)
    out = {"dice": [overlap.GetDiceCoefficient(c) for c in range(1, k)], "hd": []}
    for c in range(1, k):
        hd_filter = sitk.HausdorffDistanceImageFilter()
        hd_filter.Execute(ref_img == c, pred_img == c)
        out["hd"].append(hd_filter.GetHausdorffDistance())
    return out


def memory_child(ref_path: str, pred_path: str, spacing: list[float]) -> None:
    """Child process: load arrays, run evaluate_case once, print RSS numbers (MiB) as JSON."""
    ref, pred = np.load(ref_path), np.load(pred_path)
    baseline = _status_kib("VmRSS")
    evaluate_case(ref, pred, spacing, LABELS)
    print(json.dumps({"baseline_mib": baseline / 1024, "peak_mib": _status_kib("VmHWM") / 1024}))


def _status_kib(key: str) -> int:
    """A /proc/self/status field in KiB. VmHWM (peak RSS) is reset by exec, unlike ru_maxrss,
    which Linux carries over from the parent that forked the child."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def peak_memory(ref, pred, spacing) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / f"{name}.npy") for name in ("ref", "pred")]
        np.save(paths[0], ref)
        np.save(paths[1], pred)
        cmd = [sys.executable, __file__, "--memory-child", *paths, json.dumps(list(spacing))]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_volume(name, shape, spacing, args) -> None:
    ref, pred = make_pair(shape, spacing)
    print(f"\n== {name}: shape {shape}, spacing {spacing} mm, {ref.size / 1e6:.1f} M voxels, 3 classes ==")
    t_ours, table = median_time(lambda: evaluate_case(ref, pred, spacing, LABELS), args.repeats)
    print(table[["class", "dice", "hd", "hd95", "assd", "nsd", "n_ref"]].to_string(index=False))
    print(f"ours evaluate_case (all metrics)     {t_ours:8.3f} s")
    t_kd, hd_kd = median_time(lambda: kdtree_distances(ref, pred, spacing), args.repeats)
    t_edt, hd_edt = median_time(lambda: cropped_edt_distances(ref, pred, spacing), args.repeats)
    diff = max(abs(hd_kd[c] - hd_edt[c]) for c in hd_kd)
    print(f"distance stage, KD-tree (used)       {t_kd:8.3f} s")
    print(f"distance stage, cropped EDT          {t_edt:8.3f} s   EDT/KD-tree = {t_edt / t_kd:5.1f}x"
          f"   max |HD diff| {diff:.2e} mm")  # fmt: skip
    if not args.skip_monai:
        t_monai, monai = median_time(lambda: run_monai(ref, pred, spacing), args.repeats)
        diffs = {m: float(np.max(np.abs(table[m].to_numpy() - monai[m]))) for m in monai}
        print(f"MONAI hd+hd95+assd+dice              {t_monai:8.3f} s   MONAI/ours = {t_monai / t_ours:5.1f}x")
        print("  max |ours - MONAI|: " + ", ".join(f"{m} {v:.1e}" for m, v in diffs.items()))
    if not args.skip_sitk:
        t_sitk, itk = median_time(lambda: run_sitk(ref, pred, spacing), args.repeats)
        print(f"SimpleITK overlap+Hausdorff          {t_sitk:8.3f} s   SimpleITK/ours = {t_sitk / t_ours:5.1f}x")
        print(f"  max |dice diff| {np.max(np.abs(table['dice'].to_numpy() - itk['dice'])):.1e}; "
              f"SimpleITK HD (whole-object distance maps) {np.round(itk['hd'], 3).tolist()} mm")  # fmt: skip
    mem = peak_memory(ref, pred, spacing)
    print(f"ours peak RSS {mem['peak_mib']:.0f} MiB (process incl. inputs; {mem['peak_mib'] - mem['baseline_mib']:.0f} MiB above the loaded arrays)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="volumes 4x coarser per axis (quick)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-monai", action="store_true")
    parser.add_argument("--skip-sitk", action="store_true")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], args.memory_child[1], json.loads(args.memory_child[2]))
        return
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    for name, (shape, spacing) in VOLUMES.items():
        if args.small:
            shape, spacing = tuple(n // 4 for n in shape), tuple(s * 4 for s in spacing)
            name = f"{name} / 4"
        bench_volume(name, shape, spacing, args)


if __name__ == "__main__":
    main()
