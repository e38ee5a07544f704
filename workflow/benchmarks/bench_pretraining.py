"""Segmentation Dice with and without denoising-autoencoder pretraining, few labelled cases.

On brain demo cases generated at a coarse spacing (fast on a CPU): a denoising autoencoder
is trained on every training image (no labels); then U-Nets are trained for the same budget
on only ``n`` labelled cases, from scratch and from the denoiser (encoder only, and the whole
network), and scored by Dice (gray and white matter) on the held-out test cases, on the
preprocessed grid. Prints one row per (labelled cases, initialisation, seed) and the means.

    .venv/bin/python workflow/benchmarks/bench_pretraining.py                      # defaults: a few minutes
    .venv/bin/python workflow/benchmarks/bench_pretraining.py --labelled 2 4 --seeds 0 1 --iterations 150
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import stages
from pipeline.config import validate_config
from pipeline.evaluation.validation import dice_per_class
from pipeline.inference.ensemble import load_models
from pipeline.inference.sliding_window import sliding_window
from pipeline.io.dataset import dataset_table
from pipeline.models import build_network
from pipeline.preprocessing.case_folder import PreprocessedCase
from pipeline.tasks import train_fold


def make_dataset(args: argparse.Namespace) -> dict:
    """Generate, check, plan and preprocess the demo cases in the current folder; return the config."""
    config = validate_config(
        {
            "dataset": {"demo": "brain", "dimensions": 3, "channels": [{"name": "t1"}], "labels": {0: "background", 1: "gray_matter", 2: "white_matter"}},
            "demo": {"cases": args.cases, "test_cases": args.test_cases, "seed": 0, "spacing_mm": args.spacing},
            "plan": {"patch_size": [args.patch] * 3, "batch_size": 2, "folds": 2},
            "experiments": {
                "dae": {"task": "denoise", "model": {"name": "unet", "channels": args.channels}},
                "seg": {"model": {"name": "unet", "channels": args.channels}},
            },
        }
    )
    table = dataset_table(config)
    Path("results/plans").mkdir(parents=True, exist_ok=True)
    checks = []
    for case in table.index:
        stages.make_demo_case(config, case)
        checks.append(f"results/cases/{case}/check.json")
        stages.check(config, case, checks[-1])
    stages.fingerprint(config, checks, "results/plans/fingerprint.json")
    stages.plan(config, "results/plans/fingerprint.json", "results/plans/plans.json", "results/plans/splits.json")
    for case in table.index:
        stages.preprocess(config, case, "results/plans/plans.json", f"results/preprocessed/{case}")
    return config


def test_dice(fold_dir: Path, cases: list[str], plan: dict) -> np.ndarray:
    """Mean Dice per foreground class of the trained network over ``cases``."""
    models, _ = load_models([fold_dir / "best.pt"], build_network, "segmentation")
    scores = []
    for case in cases:
        data = PreprocessedCase(Path("results/preprocessed") / case)
        prob = sliding_window(models, np.asarray(data.image), plan["patch_size"], overlap=0.25)
        scores.append(dice_per_class(prob.argmax(0).numpy(), np.asarray(data.label), len(plan["labels"])))
    return np.mean(scores, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelled", type=int, nargs="+", default=[2, 4], help="labelled training cases per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (and choices of labelled cases)")
    parser.add_argument("--iterations", type=int, default=120, help="segmentation training iterations")
    parser.add_argument("--pretrain-iterations", type=int, default=300, help="denoising iterations")
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--test-cases", type=int, default=4)
    parser.add_argument("--spacing", type=float, default=4.0, help="voxel size of the generated cases (mm)")
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", help="keep the data and models here (default: a temporary folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_pretraining_"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    tic = time.perf_counter()
    config = make_dataset(args)
    plan = stages._read_json("results/plans/plans.json")
    table = dataset_table(config)
    train_cases = list(table.index[table["split"] == "train"])
    test_cases = list(table.index[table["split"] == "test"])
    print(
        f"data: {len(train_cases)} training + {len(test_cases)} test cases at {args.spacing} mm, shape {plan['median_shape_resampled']}, {time.perf_counter() - tic:.0f} s"
    )

    dae = copy.deepcopy(config["experiments"]["dae"])
    dae["training"].update(epochs=1, iterations_per_epoch=args.pretrain_iterations, optimizer="adamw", learning_rate=1e-3, schedule="cosine")
    tic = time.perf_counter()
    log = train_fold(
        {**config, "experiments": {"dae": dae}}, "dae", plan, {"train": train_cases, "val": test_cases[:1]}, "results/preprocessed", "models/dae/fold_0"
    )
    print(
        f"denoising autoencoder: {args.pretrain_iterations} iterations on {len(train_cases)} unlabelled images, {time.perf_counter() - tic:.0f} s, "
        f"PSNR {log['val_psnr'].iloc[-1]:.2f} dB (central patch of a test image)"
    )

    rows = []
    for n in args.labelled:
        for seed in args.seeds:
            labelled = list(np.random.default_rng(seed).choice(train_cases, size=n, replace=False))
            for init in ("scratch", "encoder", "all"):
                seg = copy.deepcopy(config["experiments"]["seg"])
                seg["training"].update(epochs=1, iterations_per_epoch=args.iterations, seed=seed, validate_every=1)
                if init != "scratch":
                    seg.update(init_from="dae", init_part=init)
                fold_dir = Path(f"models/seg_{n}_{seed}_{init}/fold_0")
                tic = time.perf_counter()
                train_fold({**config, "experiments": {"seg": seg}}, "seg", plan, {"train": labelled, "val": []}, "results/preprocessed", fold_dir)
                dice = test_dice(fold_dir, test_cases, plan)
                rows.append(
                    {
                        "labelled": n,
                        "seed": seed,
                        "init": init,
                        "dice_gm": dice[0],
                        "dice_wm": dice[1],
                        "dice_mean": dice.mean(),
                        "seconds": time.perf_counter() - tic,
                    }
                )
                if len(rows) == 1:
                    print(f"{'labelled':>8} {'seed':>4} {'init':>8} {'dice_gm':>8} {'dice_wm':>8} {'mean':>8} {'seconds':>8}")
                r = rows[-1]
                print(f"{n:>8} {seed:>4} {init:>8} {r['dice_gm']:8.4f} {r['dice_wm']:8.4f} {r['dice_mean']:8.4f} {r['seconds']:8.1f}", flush=True)
    frame = pd.DataFrame(rows)
    print("\nmean test Dice over seeds (gray/white matter mean):")
    print(frame.pivot_table(index="labelled", columns="init", values="dice_mean").round(4).to_string())
    print(f"\nworkdir: {workdir}")


if __name__ == "__main__":
    main()
