"""A resumable training loop for the dense-regression tasks (landmarks, denoising).

Same files and guarantees as the segmentation loop (:mod:`pipeline.training.loop`):
work files in ``<fold dir>/work/`` (``resume.pt``, ``best.pt``, ``log.tsv``), a rerun resumes
from the last checkpoint with the same result as an uninterrupted run, SIGTERM/SIGUSR1
save a checkpoint first; on completion ``last.pt``, ``best.pt`` and ``log.tsv`` land in the
fold folder. The task supplies the batches, the loss and the validation.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.atomic import atomic_path, write_tsv
from pipeline.errors import PipelineError
from pipeline.training.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from pipeline.training.device import amp_dtype, autocast, loader_workers
from pipeline.training.loop import TrainingInterrupted, _StopFlag, versions
from pipeline.training.schedule import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

#: ``loss(network, batch, device) -> scalar``; ``validate(network) -> {metric: value, "score": higher is better}``.
LossFn = Callable[[torch.nn.Module, dict, torch.device], torch.Tensor]
ValidateFn = Callable[[torch.nn.Module], dict[str, float]]


def run_training(
    name: str, fold_dir: str | os.PathLike[str], net: torch.nn.Module, arch: Mapping[str, Any], settings: Mapping[str, Any],
    batches: torch.utils.data.Dataset, loss_fn: LossFn, validate: ValidateFn, extra: Mapping[str, Any], device: torch.device,
) -> pd.DataFrame:
    """Train ``net`` (already on ``device``) for ``epochs * iterations_per_epoch`` batches.

    Args:
        arch: architecture description stored in every checkpoint and checked on resume.
        settings: the experiment's ``training`` section.
        batches: item ``i`` is the batch of iteration ``i`` (a dict of tensors).
        extra: more entries of every checkpoint (plan, experiment settings).
    Returns:
        The training log, one row per epoch (``train_loss``, ``learning_rate``, ``seconds``,
        ``val_*`` on validated epochs).
    Raises:
        TrainingInterrupted: after SIGTERM/SIGUSR1, once the checkpoint is written.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise PipelineError(f"training of {name}: data-parallel training (--processes > 1) supports task segmentation only; use one process")
    fold_dir, work = Path(fold_dir), Path(fold_dir) / "work"
    work.mkdir(parents=True, exist_ok=True)
    amp = amp_dtype(device, settings["amp"])
    optimizer = build_optimizer(net.parameters(), settings)
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
        log.info("resuming %s %s at iteration %d of %d", name, fold_dir.name, start, total)

    def snapshot(iteration: int) -> dict[str, Any]:
        return {
            "model": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "torch_rng": torch.get_rng_state(), "iteration": iteration, "best_score": best,
            "log": rows, "architecture": dict(arch), "versions": versions(), "seed": settings["seed"], **extra,
        }

    def save_best(epoch: int, score: float) -> None:
        save_checkpoint(work / "best.pt", {"model": net.state_dict(), "architecture": dict(arch), "epoch": epoch, "val_score": score, "versions": versions(), **extra})

    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start, total), num_workers=loader_workers(settings["num_workers"], device),
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(settings["seed"]),
    )
    ipe = settings["iterations_per_epoch"]
    net.train()
    losses: list[float] = []
    tic = time.perf_counter()
    with _StopFlag() as stop:
        for iteration, batch in zip(range(start, total), loader):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, amp):
                loss = loss_fn(net, batch, device)
            scaler.scale(loss).backward()
            if settings["grad_clip"]:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), settings["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(float(loss.detach()))
            done = iteration + 1
            if done % ipe == 0:
                epoch = done // ipe
                row: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses)), "learning_rate": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - tic, 3)}
                if epoch % settings["validate_every"] == 0 or done == total:
                    net.eval()
                    metrics = validate(net)
                    net.train()
                    row.update({f"val_{k}": v for k, v in metrics.items()})
                    if metrics["score"] > best:
                        best = float(metrics["score"])
                        save_best(epoch, best)
                rows.append(row)
                log.info("%s %s epoch %d/%d loss %.5f %s", name, fold_dir.name, epoch, settings["epochs"], row["train_loss"], " ".join(f"{k}={v:.4f}" for k, v in row.items() if k.startswith("val_")))
                losses, tic = [], time.perf_counter()
                write_tsv(work / "log.tsv", pd.DataFrame(rows))
                if epoch % settings["checkpoint_every"] == 0 or done == total:
                    save_checkpoint(resume, snapshot(done))
            if stop.signal is not None:
                save_checkpoint(resume, snapshot(done))
                raise TrainingInterrupted(f"training of {name} {fold_dir.name} stopped by signal {stop.signal} at iteration {done}/{total}; checkpoint saved to {resume}, rerun to resume")
    if not (work / "best.pt").exists():
        save_best(settings["epochs"], best)
    # Copy first, move the resume state last: a kill in between leaves work/ intact.
    for source, target in ((work / "log.tsv", fold_dir / "log.tsv"), (work / "best.pt", fold_dir / "best.pt")):
        with atomic_path(target, suffix=target.suffix) as tmp:
            shutil.copyfile(source, tmp)
    os.replace(resume, fold_dir / "last.pt")
    (work / "best.pt").unlink(missing_ok=True)
    return pd.DataFrame(rows)
