"""The training loop of one experiment and fold, resumable from its last checkpoint.

Work files live in ``<fold dir>/work/`` (``resume.pt``, ``best.pt``, ``log.tsv``), which
Snakemake does not delete before rerunning a failed job, so a rerun of the same rule
resumes where the previous one stopped (after a kill, a SLURM time limit or a crash).
When training finishes, they become the rule's outputs ``last.pt``, ``best.pt`` and
``log.tsv`` in the fold folder.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import monai
import numpy as np
import pandas as pd
import torch

from pipeline.atomic import atomic_path, write_tsv
from pipeline.errors import PipelineError
from pipeline.inference import dice_per_class, sliding_window_probabilities
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.training.augment import build_augmentation
from pipeline.training import distributed
from pipeline.training.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from pipeline.training.device import amp_dtype, autocast, loader_workers, maybe_compile, memory_format, select_device
from pipeline.training.progress import ProgressBar
from pipeline.training.sampling import BatchDataset, PreprocessedCase
from pipeline.training.schedule import build_optimizer, build_scheduler

log = logging.getLogger(__name__)


class TrainingInterrupted(PipelineError):
    """Training stopped on a signal after saving a checkpoint; rerun to resume."""


def architecture(experiment: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be loaded into a model (name, settings, sizes)."""
    return {
        "model": dict(experiment["model"]),
        "spatial_dims": int(plan["dimensions"]),
        "in_channels": len(plan["channels"]),
        "num_classes": len(plan["labels"]),
    }


def make_model(arch: Mapping[str, Any]) -> torch.nn.Module:
    """Build the network an :func:`architecture` dict describes."""
    settings = {k: v for k, v in arch["model"].items() if k != "name"}
    return build_model(arch["model"]["name"], arch["spatial_dims"], arch["in_channels"], arch["num_classes"], **settings)


def resolve_class_weights(experiment: Mapping[str, Any], plan: Mapping[str, Any]) -> list[float] | None:
    """The experiment's class weights: the plan's (``auto``), none, or the given list."""
    weights = experiment["class_weights"]
    num_classes = len(plan["labels"])
    if weights == "auto":
        return list(plan["class_weights"])
    if weights == "none":
        return None
    if len(weights) != num_classes:
        raise PipelineError(f"class_weights has {len(weights)} values, expected one per class ({num_classes}: {list(plan['labels'].values())})")
    return list(weights)


def versions() -> dict[str, str]:
    """Library versions recorded in checkpoints and reports."""
    return {"python": platform.python_version(), "torch": str(torch.__version__), "monai": str(monai.__version__), "numpy": str(np.__version__)}


class _StopFlag:
    """Set by SIGTERM/SIGUSR1 (what SLURM sends before a time limit)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("received signal %d: saving a checkpoint after this iteration", signum)
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def validate(model: torch.nn.Module, cases: Sequence[PreprocessedCase], patch: Sequence[int], num_classes: int, device: torch.device, amp: torch.dtype | None, batch_size: int) -> list[float]:
    """Mean sliding-window Dice per foreground class over ``cases`` (preprocessed grid) of
    ``model``, which the caller has put in eval mode (:func:`train_loop` does)."""
    scores = []
    for case in cases:
        prob = sliding_window_probabilities([model], np.asarray(case.image), patch, overlap=0.25, batch_size=batch_size, device=device, amp=amp)
        scores.append(dice_per_class(prob.argmax(0).numpy(), np.asarray(case.label), num_classes))
    return np.nanmean(np.array(scores, dtype=float), axis=0).tolist() if scores else [math.nan] * (num_classes - 1)


def mirror_validation(model: torch.nn.Module, cases: Sequence[PreprocessedCase], patch: Sequence[int], num_classes: int, settings: Mapping[str, Any], device: torch.device, amp: torch.dtype | None, batch_size: int) -> dict[str, float]:
    """Mean Dice (foreground classes, then cases) on ``cases`` without and with mirroring,
    with the inference ``settings`` (overlap, mirror_axes): what ``inference.mirror: auto`` decides on."""
    model.eval()
    plain, mirrored = [], []
    for case in cases:
        image, label = np.asarray(case.image), np.asarray(case.label)
        for mirror, scores in ((False, plain), (True, mirrored)):
            prob = sliding_window_probabilities([model], image, patch, settings["overlap"], mirror, batch_size, device, amp, settings.get("mirror_axes"))
            scores.append(float(np.nanmean(dice_per_class(prob.argmax(0).numpy(), label, num_classes))))
    return {"dice": float(np.nanmean(plain)), "dice_mirrored": float(np.nanmean(mirrored)), "cases": len(cases)}


#: ``loss(model, batch) -> scalar``: the task's loss of one batch (moving it to the device).
LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]
#: ``validate(net) -> (log columns, score)``: the task's validation; a higher score is better.
ValidateFn = Callable[[torch.nn.Module], tuple[dict[str, float], float]]


def train_loop(
    label: str, fold_dir: Path, net: torch.nn.Module, model: torch.nn.Module, arch: Mapping[str, Any], settings: Mapping[str, Any],
    batches: torch.utils.data.Dataset, loss: LossFn, validate: ValidateFn, extra: Mapping[str, Any], score_key: str,
    device: torch.device, context: distributed.Context,
) -> list[dict[str, Any]]:
    """The loop every task shares: ``epochs * iterations_per_epoch`` optimizer steps, resumed
    from ``fold_dir/work/resume.pt`` when it exists.

    Args:
        label: the experiment's name, for messages.
        net: the network (its weights are saved); ``model``: what runs it (``net``, or a
            DistributedDataParallel / compiled wrapper of it).
        arch: architecture description stored in every checkpoint and checked on resume.
        settings: the experiment's ``training`` section.
        batches: item ``i`` is the batch of iteration ``i`` (seeded, so a resumed run draws the same).
        extra: more entries of every checkpoint (plan, experiment settings).
        score_key: the name under which ``best.pt`` stores the validation score.
        context: this process's place among data-parallel processes; only the main one
            validates and writes.
    Returns:
        The log rows, one per epoch. Afterwards the main process has ``work/best.pt``,
        ``work/log.tsv`` and ``work/resume.pt``; :func:`finish_fold` makes them the outputs.
    Raises:
        TrainingInterrupted: after SIGTERM/SIGUSR1, once the checkpoint is written.
    """
    work = fold_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    amp = amp_dtype(device, settings["amp"])
    optimizer = build_optimizer(model.parameters(), settings)
    total = settings["epochs"] * settings["iterations_per_epoch"]
    scheduler = build_scheduler(optimizer, settings["schedule"], total)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    start, best, rows = 0, -math.inf, []
    resume = work / "resume.pt"
    if resume.exists():
        state = load_checkpoint(resume)
        load_model_weights(net, state, resume, arch)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        start, best, rows = state["iteration"], state["best_score"], list(state["log"])
        log.info("resuming %s %s at iteration %d of %d", label, fold_dir.name, start, total)

    def checkpoint_state(iteration: int) -> dict[str, Any]:
        return {
            "model": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "torch_rng": torch.get_rng_state(), "iteration": iteration, "best_score": best,
            "log": rows, "architecture": dict(arch), "versions": versions(), "seed": settings["seed"], **extra,
        }

    def save_best(epoch: int, score: float) -> None:
        """What prediction needs: weights, architecture, and ``extra`` (plan, experiment)."""
        save_checkpoint(work / "best.pt", {"model": net.state_dict(), "architecture": dict(arch), "epoch": epoch, score_key: score, "versions": versions(), **extra})

    # A generator of its own: creating the loader's iterator must not draw from the global
    # torch RNG (dropout), or a resumed run would diverge from an uninterrupted one.
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start, total), num_workers=loader_workers(settings["num_workers"], device),
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(settings["seed"]),
    )
    ipe = settings["iterations_per_epoch"]
    model.train()
    epoch_losses: list[float] = []
    tic = time.perf_counter()
    bar = ProgressBar(total, start, label=f"{label} {fold_dir.name}") if context.is_main else None
    with _StopFlag() as stop:
        for iteration, batch in zip(range(start, total), loader):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, amp):
                value = loss(model, batch)
            scaler.scale(value).backward()
            if settings["grad_clip"]:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            epoch_losses.append(float(value.detach()))
            done = iteration + 1
            if bar:
                bar.update(done, epoch_losses[-1])
            if done % ipe == 0:
                epoch = done // ipe
                row: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(epoch_losses)), "learning_rate": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - tic, 3)}
                if context.is_main and (epoch % settings["validate_every"] == 0 or done == total):
                    net.eval()
                    columns, score = validate(net)
                    net.train()
                    row.update(columns)
                    if score > best:
                        best = float(score)
                        save_best(epoch, best)
                rows.append(row)
                if bar:
                    bar.clear()
                log.info("%s %s epoch %d/%d loss %.5g %s", label, fold_dir.name, epoch, settings["epochs"], row["train_loss"], " ".join(f"{k}={v:.4f}" for k, v in row.items() if k.startswith("val_")))
                epoch_losses, tic = [], time.perf_counter()
                if context.is_main:
                    write_tsv(work / "log.tsv", pd.DataFrame(rows))
                    if epoch % settings["checkpoint_every"] == 0 or done == total:
                        save_checkpoint(resume, checkpoint_state(done))
                distributed.barrier(context)
            if stop.signal is not None:
                if bar:
                    bar.close()
                if context.is_main:
                    save_checkpoint(resume, checkpoint_state(done))
                distributed.teardown(context)
                raise TrainingInterrupted(f"training of {label} {fold_dir.name} stopped by signal {stop.signal} at iteration {done}/{total}; checkpoint saved to {resume}, rerun to resume")
    if bar:
        bar.close()
    if not distributed.replicas_agree(net, context):
        raise PipelineError(f"training of {label} {fold_dir.name}: the data-parallel replicas hold different weights")
    if context.distributed:
        log.info("all %d data-parallel replicas hold identical weights (%s)", context.world_size, distributed.weights_digest(net)[:16])
    distributed.teardown(context)
    if context.is_main and not (work / "best.pt").exists():
        save_best(settings["epochs"], best)
    return rows


def finish_fold(fold_dir: Path) -> None:
    """Turn the work files of a finished :func:`train_loop` into the outputs ``log.tsv``,
    ``best.pt`` and ``last.pt``. Copies first and moves the resume state last: a kill in
    between leaves ``work/`` intact, and the rerun finishes again."""
    work = fold_dir / "work"
    for source, target in ((work / "log.tsv", fold_dir / "log.tsv"), (work / "best.pt", fold_dir / "best.pt")):
        with atomic_path(target, suffix=target.suffix) as tmp:
            shutil.copyfile(source, tmp)
    os.replace(work / "resume.pt", fold_dir / "last.pt")
    (work / "best.pt").unlink(missing_ok=True)


def train_fold(name: str, experiment: Mapping[str, Any], plan: Mapping[str, Any], split: Mapping[str, Sequence[str]], preprocessed: str | os.PathLike[str], fold_dir: str | os.PathLike[str], device: torch.device | None = None) -> pd.DataFrame:
    """Train one fold of a segmentation experiment; resume from ``fold_dir/work/resume.pt`` when it exists.

    Args:
        experiment: the experiment's validated config (model, loss, class_weights, training).
        plan: the plan (patch and batch size, labels, channels, class weights).
        split: ``{"train": [case ids], "val": [case ids]}`` of this fold.
        preprocessed: folder holding one preprocessed folder per case.
    Returns:
        The training log (one row per epoch).
    Raises:
        TrainingInterrupted: after SIGTERM/SIGUSR1, once the checkpoint is written.
    """
    settings = experiment["training"]
    fold_dir = Path(fold_dir)
    context = distributed.setup(device or select_device())
    device = context.device
    amp = amp_dtype(device, settings["amp"])
    arch = architecture(experiment, plan)
    labels = list(plan["labels"].values())
    num_classes = len(labels)
    patch, batch = plan["patch_size"], plan["batch_size"]
    layout = memory_format(arch["spatial_dims"], device)

    torch.manual_seed(settings["seed"])
    net = make_model(arch).to(device, memory_format=layout)
    if experiment.get("init_from"):  # pretrained weights (e.g. a denoising autoencoder), by name and shape
        from pipeline.denoise.pretrain import load_pretrained

        load_pretrained(net, experiment, fold_dir)
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None) if context.distributed else net
    model = maybe_compile(model, settings["compile"])
    loss_settings = {k: v for k, v in experiment["loss"].items() if k != "name"}
    loss_fn = build_loss(experiment["loss"]["name"], resolve_class_weights(experiment, plan), **loss_settings).to(device)
    augment = build_augmentation(settings["augmentation"], arch["spatial_dims"])
    dataset = BatchDataset([Path(preprocessed) / c for c in split["train"]], patch, batch, settings["foreground_fraction"], settings["seed"], augment, stream=context.rank)
    val_cases = [PreprocessedCase(Path(preprocessed) / c) for c in split["val"]]

    def loss(runner: torch.nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
        x = data["image"].to(device, non_blocking=True, memory_format=layout)
        return loss_fn(runner(x), data["label"].to(device, non_blocking=True))

    def validate_dice(network: torch.nn.Module) -> tuple[dict[str, float], float]:
        dice = validate(network, val_cases, patch, num_classes, device, amp, batch)
        score = float(np.nanmean(dice)) if not all(math.isnan(d) for d in dice) else -math.inf
        return {**{f"val_dice_{c}": d for c, d in zip(labels[1:], dice)}, "val_dice_mean": score}, score

    extra = {"plan": dict(plan), "experiment": dict(experiment)}
    rows = train_loop(name, fold_dir, net, model, arch, settings, dataset, loss, validate_dice, extra, "val_dice_mean", device, context)
    if not context.is_main:
        return pd.DataFrame(rows)
    work = fold_dir / "work"
    inference = experiment.get("inference", {})
    if inference.get("mirror") == "auto" and val_cases:
        state = load_checkpoint(work / "best.pt")
        if "mirror_validation" not in state:  # a rerun after a kill here does not measure twice
            best_net = make_model(arch)
            load_model_weights(best_net, state, work / "best.pt", arch)
            state["mirror_validation"] = mirror_validation(best_net.to(device), val_cases, patch, num_classes, inference, device, amp, batch)
            save_checkpoint(work / "best.pt", state)
            log.info("%s %s: validation Dice %.4f without, %.4f with mirroring", name, fold_dir.name, state["mirror_validation"]["dice"], state["mirror_validation"]["dice_mirrored"])
    finish_fold(fold_dir)
    return pd.DataFrame(rows)
