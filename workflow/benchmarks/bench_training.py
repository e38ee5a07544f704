"""Training throughput: can one loader worker keep up with the model on this machine?

For the demo configuration (48^3 patches, batch 2, the demo's U-Net) and a 3D
configuration with 96^3 patches, prints:
- loader: samples/s of BatchDataset with the default augmentations, in this process;
- model: samples/s of forward + backward + optimiser step on the same batches;
- the time of a full training step with the loader in one worker process
  (DataLoader num_workers=1, as `training.num_workers: 1` does) against the bare step.

Needs preprocessed cases: run the demo up to preprocessing first
(`snakemake --cores 2 $(ls -d results/preprocessed/*/properties.json)` or the whole demo).

    python workflow/benchmarks/bench_training.py [--steps 10] [--preprocessed results/preprocessed]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from pipeline.config import load_config
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.training.augment import build_augmentation
from pipeline.training.sampling import BatchDataset


def measure(name: str, folders: list[Path], patch: list[int], batch: int, model_settings: dict, augmentation: dict, steps: int) -> None:
    dataset = BatchDataset(folders, patch, batch, 0.33, seed=0, augment=build_augmentation(augmentation, 3))
    dataset[0]  # warm-up (memory maps, MONAI imports)
    load_times = []
    batches = []
    for i in range(steps):
        tic = time.perf_counter()
        batches.append(dataset[i])
        load_times.append(time.perf_counter() - tic)
    model = build_model("unet", 3, 1, 3, **model_settings)
    loss_fn = build_loss("dice_ce", [0.5, 1.0, 1.5])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.99, nesterov=True)

    def step(data: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(data["image"]), data["label"])
        loss.backward()
        optimizer.step()

    step(batches[0])  # warm-up
    model_times = []
    for data in batches:
        tic = time.perf_counter()
        step(data)
        model_times.append(time.perf_counter() - tic)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=range(1000, 1000 + steps + 1), num_workers=1, prefetch_factor=2)
    iterator = iter(loader)
    step(next(iterator))  # worker start-up and warm-up, not timed
    tic = time.perf_counter()
    for data in iterator:
        step(data)
    full = (time.perf_counter() - tic) / steps
    t_load, t_model = statistics.median(load_times), statistics.median(model_times)
    print(f"{name}: patch {patch}, batch {batch}")
    print(f"  loader (1 process, default augmentation): {batch / t_load:7.2f} samples/s  ({t_load:.3f} s/batch)")
    print(f"  model forward+backward+step:              {batch / t_model:7.2f} samples/s  ({t_model:.3f} s/batch)")
    print(f"  loader/model throughput ratio:            {t_model / t_load:7.2f}  (>= 1: one worker keeps up)")
    print(f"  full step with loader in 1 worker:        {full:.3f} s vs bare {t_model:.3f} s: {100 * (full / t_model - 1):+.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--preprocessed", default="results/preprocessed")
    parser.add_argument("--config", default="config/config.yaml")
    args = parser.parse_args()
    folders = sorted(p.parent for p in Path(args.preprocessed).glob("*/label.npy"))
    if not folders:
        raise SystemExit(f"no preprocessed cases under {args.preprocessed}; run the demo's preprocessing first")
    config = load_config(args.config)
    experiment = next(iter(config["experiments"].values()))
    model = {k: v for k, v in experiment["model"].items() if k in ("channels",)}
    augmentation = experiment["training"]["augmentation"]
    print(f"torch threads: {torch.get_num_threads()}, cases: {len(folders)}")
    measure("demo configuration", folders, [48, 48, 48], 2, model, augmentation, args.steps)
    measure("3D configuration", folders, [96, 96, 96], 2, model, augmentation, max(4, args.steps // 2))


if __name__ == "__main__":
    main()
