"""This project's plan against nnU-Net v2's planner, on synthetic data of five Decathlon geometries.

For each geometry a small dataset is written in nnU-Net's raw layout (``dataset.json``,
``imagesTr``, ``labelsTr``; one more case in ``imagesTs``/``labelsTs`` as our test case,
which nnU-Net does not read): a few cases with jittered spacing (+-5 % per axis) and shape
(+-10 %), strictly positive intensities (so nnU-Net's crop to nonzero keeps the whole image,
as ours does) and ellipsoid labels. Then

- nnU-Net: ``nnUNetv2_extract_fingerprint`` and ``nnUNetv2_plan_experiment`` (default
  ``ExperimentPlanner``, 8 GB) from the virtual environment ``$NNUNET_VENV``
  (default ``/tmp/nnunet-venv``; ``python3 -m venv /tmp/nnunet-venv``, then
  ``pip install torch==2.13.0`` and ``pip install nnunetv2 torch==2.13.0``); the project never
  imports it;
- ours: the check, fingerprint and plan stages on the same files (``plan.gpu_memory_gb: 8``),

and prints for the 3D full-resolution configuration, side by side: target spacing, patch
size, number of stages, strides and kernel sizes per stage, batch size, and whether each
agrees (spacing to 1e-3 mm, strides and kernels stage by stage, patch within one pooling
step per axis). nnU-Net's axes are transposed back to ours (numpy order z, y, x); nnU-Net's
strides start with the unstrided first stage, ours list the steps between stages.

    .venv/bin/python workflow/benchmarks/bench_planner.py [--cases 4] [--work /tmp/bench_planner]

Without the nnU-Net environment it says so and exits 0. Prints a Markdown table; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

#: name, spacing (z, y, x) mm, median shape (z, y, x), channel names, label names.
GEOMETRIES = [
    ("Prostate", (3.6, 0.62, 0.62), (20, 320, 320), ["T2", "ADC"], ["background", "PZ", "TZ"]),
    ("Spleen", (5.0, 0.79, 0.79), (90, 512, 512), ["CT"], ["background", "spleen"]),
    ("Hippocampus", (1.0, 1.0, 1.0), (36, 50, 35), ["MRI"], ["background", "anterior", "posterior"]),
    ("Heart", (1.37, 1.25, 1.25), (115, 320, 232), ["MRI"], ["background", "left atrium"]),
    ("BrainTumour", (1.0, 1.0, 1.0), (138, 169, 138), ["FLAIR", "T1w", "t1gd", "T2w"], ["background", "edema", "non-enhancing", "enhancing"]),
]
ENDING = ".nii.gz"


def write_case(folder: Path, label_folder: Path, case: str, spacing: np.ndarray, shape: tuple[int, ...], channels: int, classes: int, rng) -> None:
    """One case: ``channels`` int16 images (values 100..~400) and an ellipsoid label with ``classes - 1`` nested shells."""
    import SimpleITK as sitk

    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) / (n / 2) for n in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids) / 0.5**2)
    label = np.zeros(shape, np.uint8)
    for k in range(1, classes):
        label[radius < 1.0 - (k - 1) / classes] = k
    for c in range(channels):
        image = (100 + 60 * label + rng.normal(0, 10, shape).clip(-90, 90) + 20 * c).astype(np.int16)
        write(sitk, image, spacing, folder / f"{case}_{c:04d}{ENDING}")
    write(sitk, label, spacing, label_folder / f"{case}{ENDING}")


def write(sitk, array: np.ndarray, spacing: np.ndarray, path: Path) -> None:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing([float(s) for s in spacing[::-1]])  # ITK order
    sitk.WriteImage(img, str(path), True)


def make_dataset(raw: Path, number: int, geometry: tuple, cases: int, seed: int) -> Path:
    name, spacing, shape, channels, labels = geometry
    root = raw / f"Dataset{number:03d}_{name}"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(cases + 1):
        jitter_spacing = np.asarray(spacing) * rng.uniform(0.95, 1.05, 3)
        jitter_shape = tuple(max(8, int(round(n * f))) for n, f in zip(shape, rng.uniform(0.9, 1.1, 3)))
        split = ("imagesTr", "labelsTr") if i < cases else ("imagesTs", "labelsTs")
        write_case(root / split[0], root / split[1], f"case_{i:03d}", jitter_spacing, jitter_shape, len(channels), len(labels), rng)
    info = {
        "channel_names": {str(i): c for i, c in enumerate(channels)},
        "labels": {n: i for i, n in enumerate(labels)},
        "numTraining": cases,
        "file_ending": ENDING,
    }
    (root / "dataset.json").write_text(json.dumps(info, indent=2))
    return root


def run_nnunet(venv: Path, work: Path, number: int) -> dict:
    env = dict(os.environ, nnUNet_raw=str(work / "raw"), nnUNet_preprocessed=str(work / "preprocessed"), nnUNet_results=str(work / "results"))
    env["nnUNet_def_n_proc"] = "1"
    for command in (["nnUNetv2_extract_fingerprint", "-d", str(number), "-np", "1"], ["nnUNetv2_plan_experiment", "-d", str(number)]):
        subprocess.run([str(venv / "bin" / command[0]), *command[1:]], env=env, check=True, capture_output=True, text=True)
    folder = next((work / "preprocessed").glob(f"Dataset{number:03d}_*"))
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    full = plans["configurations"]["3d_fullres"]
    forward = plans["transpose_forward"]
    back = lambda values: [values[forward.index(axis)] for axis in range(3)]  # noqa: E731
    arch = full["architecture"]["arch_kwargs"]
    return {
        "spacing": back(full["spacing"]),
        "patch": back(full["patch_size"]),
        "strides": [back(s) for s in arch["strides"][1:]],
        "kernels": [back(k) for k in arch["kernel_sizes"]],
        "batch": full["batch_size"],
    }


def run_ours(root: Path, work: Path) -> dict:
    from pipeline import stages
    from pipeline.config import validate_config
    from pipeline.io.dataset import dataset_table

    config = validate_config({"dataset": {"dataset_json": str(root / "dataset.json")}, "plan": {"gpu_memory_gb": 8, "folds": 2}, "experiments": {"e": {}}})
    out = work / "ours" / root.name
    out.mkdir(parents=True, exist_ok=True)
    checks = []
    for case in dataset_table(config).index:
        checks.append(out / f"{case}.json")
        stages.check(config, str(case), checks[-1])
    stages.fingerprint(config, checks, out / "fingerprint.json")
    plan = stages.plan(config, out / "fingerprint.json", out / "plans.json", out / "splits.json")
    net = plan["network"]
    return {
        "spacing": plan["target_spacing"][::-1],
        "patch": net["patch_size"],
        "strides": net["strides"],
        "kernels": net["kernel_sizes"],
        "batch": net["batch_size"],
    }


def compare(ours: dict, theirs: dict) -> dict[str, bool]:
    divisor = np.prod(np.asarray(ours["strides"]), axis=0) if ours["strides"] else np.ones(3)
    return {
        "spacing": bool(np.allclose(ours["spacing"], theirs["spacing"], atol=1e-3)),
        "patch": bool(np.all(np.abs(np.subtract(ours["patch"], theirs["patch"])) <= divisor)),
        "stages": len(ours["kernels"]) == len(theirs["kernels"]),
        "strides": ours["strides"] == theirs["strides"],
        "kernels": ours["kernels"] == theirs["kernels"],
        "batch": ours["batch"] == theirs["batch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4, help="training cases per geometry")
    parser.add_argument("--work", type=Path, default=None, help="folder for the datasets (default: a temporary one)")
    parser.add_argument("--only", nargs="*", default=None, help="geometries to run (names as in GEOMETRIES)")
    args = parser.parse_args()
    venv = Path(os.environ.get("NNUNET_VENV", "/tmp/nnunet-venv"))
    if not (venv / "bin" / "nnUNetv2_plan_experiment").exists():
        print(f"skipped: no nnU-Net v2 in {venv} (set NNUNET_VENV to a virtual environment with `pip install nnunetv2 torch==2.13.0`)")
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_planner_"))
    fmt = lambda v: " ".join("x".join(str(x) for x in s) for s in v) if v and isinstance(v[0], list) else "x".join(f"{x:g}" for x in v)  # noqa: E731
    print("| task | side | spacing (z y x) mm | patch | stages | strides (steps) | kernels (stages) | batch |")
    print("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for number, geometry in enumerate(GEOMETRIES, start=901):
        if args.only and geometry[0] not in args.only:
            continue
        start = time.perf_counter()
        root = make_dataset(work / "raw", number, geometry, args.cases, seed=number)
        theirs, ours = run_nnunet(venv, work, number), run_ours(root, work)
        same = compare(ours, theirs)
        verdicts.append((geometry[0], same))
        for side, result in (("nnU-Net", theirs), ("ours", ours)):
            row = [
                fmt([round(s, 3) for s in result["spacing"]]),
                fmt(result["patch"]),
                str(len(result["kernels"])),
                fmt(result["strides"]),
                fmt(result["kernels"]),
                str(result["batch"]),
            ]
            print(f"| {geometry[0]} | {side} | " + " | ".join(row) + " |")
        marks = ["yes" if same[k] else "NO" for k in ("spacing", "patch", "stages", "strides", "kernels", "batch")]
        print(f"| {geometry[0]} | equal? | " + " | ".join(marks) + f" ({time.perf_counter() - start:.0f} s) |")
        sys.stdout.flush()
    print()
    agree = sum(all(v.values()) for _, v in verdicts)
    print(f"{agree} of {len(verdicts)} geometries agree on every column")


if __name__ == "__main__":
    main()
