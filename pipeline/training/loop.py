"""The training loop every task shares, resumable from its last checkpoint; it knows no task.

Work files live in ``<fold dir>/work/`` (``resume.pt``, ``best.pt``, ``log.tsv``), which
Snakemake does not delete before rerunning a failed job, so a rerun of the same rule
resumes where the previous one stopped (after a kill, a SLURM time limit or a crash).
When training finishes, they become the rule's outputs ``last.pt``, ``best.pt`` and
``log.tsv`` in the fold folder. One process at a time works on them: the driver
(:func:`pipeline.training.task.train_task`) holds the fold's lock (:mod:`pipeline.training.lock`).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import monai
import numpy as np
import pandas as pd
import torch

from pipeline.atomic import atomic_path, write_tsv
from pipeline.errors import PipelineError
from pipeline.runtime import amp_dtype, autocast, loader_workers
from pipeline.training import distributed
from pipeline.training.checkpoint import CheckpointError, error_reason, load_checkpoint, load_model_weights, save_checkpoint
from pipeline.training.progress import ProgressBar
from pipeline.training.schedule import build_optimizer, build_scheduler

log = logging.getLogger(__name__)


class TrainingInterrupted(PipelineError):
    """Training stopped on a signal after saving a checkpoint; rerun to resume."""


class TrainingDiverged(PipelineError):
    """The loss became NaN or infinite."""


def versions() -> dict[str, str]:
    """Library versions recorded in checkpoints and reports."""
    return {"python": platform.python_version(), "torch": str(torch.__version__), "monai": str(monai.__version__), "numpy": str(np.__version__)}


class StopFlag:
    """Set by SIGTERM/SIGUSR1 (what SLURM sends before a time limit)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("received signal %d: saving a checkpoint after this iteration", signum)
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def resume_from(
    path: Path, net: torch.nn.Module, arch: Mapping[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler
) -> tuple[int, float, list[dict[str, Any]]]:
    """Load the resume state ``path`` into the network, optimizer, scheduler, scaler and the
    torch RNG; return ``(iteration, best score, log rows)``.

    Raises:
        CheckpointError: naming ``path``: unreadable, of another architecture, or without
            (or with a damaged) optimizer, scheduler, scaler, RNG state or progress.
    """
    state = load_checkpoint(path)
    load_model_weights(net, state, path, arch)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        rng = state["torch_rng"]
        if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
            raise TypeError(f"torch_rng is a {type(rng).__name__}, not a uint8 tensor")
        torch.set_rng_state(rng)
        iteration, best, rows = int(state["iteration"]), float(state["best_score"]), [dict(r) for r in state["log"]]
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be resumed from ({error_reason(err)}); move it away to train this fold from the start") from err
    return iteration, best, rows


#: ``loss(model, batch) -> scalar``: the task's loss of one batch (moving it to the device).
LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]
#: ``validate(net) -> (log columns, score)``: the task's validation; a higher score is better.
ValidateFn = Callable[[torch.nn.Module], tuple[dict[str, float], float]]


def train_loop(
    label: str,
    fold_dir: Path,
    net: torch.nn.Module,
    model: torch.nn.Module,
    arch: Mapping[str, Any],
    settings: Mapping[str, Any],
    batches: torch.utils.data.Dataset,
    loss: LossFn,
    validate: ValidateFn,
    extra: Mapping[str, Any],
    score_key: str,
    device: torch.device,
    context: distributed.Context,
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
    if resume.exists() or resume.is_symlink():
        start, best, rows = resume_from(resume, net, arch, optimizer, scheduler, scaler)
        log.info("resuming %s %s at iteration %d of %d", label, fold_dir.name, start, total)

    def checkpoint_state(iteration: int) -> dict[str, Any]:
        return {
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "iteration": iteration,
            "best_score": best,
            "log": rows,
            "architecture": dict(arch),
            "versions": versions(),
            "seed": settings["seed"],
            **extra,
        }

    def save_best(epoch: int, score: float) -> None:
        """What prediction needs: weights, architecture, and ``extra`` (plan, experiment)."""
        save_checkpoint(
            work / "best.pt", {"model": net.state_dict(), "architecture": dict(arch), "epoch": epoch, score_key: score, "versions": versions(), **extra}
        )

    # A generator of its own: creating the loader's iterator must not draw from the global
    # torch RNG (dropout), or a resumed run would diverge from an uninterrupted one.
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(start, total),
        num_workers=loader_workers(settings["num_workers"], device),
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(settings["seed"]),
    )
    ipe = settings["iterations_per_epoch"]
    model.train()
    epoch_losses: list[float] = []
    tic = time.perf_counter()
    bar = ProgressBar(total, start, label=f"{label} {fold_dir.name}") if context.is_main else None
    with StopFlag() as stop:
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
            if not math.isfinite(epoch_losses[-1]) and not scaler.is_enabled():  # fp16: the scaler skips such steps
                raise TrainingDiverged(
                    f"training of {label} {fold_dir.name}: the loss is {epoch_losses[-1]} at epoch {iteration // settings['iterations_per_epoch'] + 1}, "
                    f"iteration {done} of {total}; lower training.learning_rate or check the inputs (the last checkpoint is kept in {work})"
                )
            if bar:
                bar.update(done, epoch_losses[-1])
            if done % ipe == 0:
                epoch = done // ipe
                row: dict[str, Any] = {
                    "epoch": epoch,
                    "train_loss": float(np.mean(epoch_losses)),
                    "learning_rate": optimizer.param_groups[0]["lr"],
                    "seconds": round(time.perf_counter() - tic, 3),
                }
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
                log.info(
                    "%s %s epoch %d/%d loss %.5g %s",
                    label,
                    fold_dir.name,
                    epoch,
                    settings["epochs"],
                    row["train_loss"],
                    " ".join(f"{k}={v:.4f}" for k, v in row.items() if k.startswith("val_")),
                )
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
                raise TrainingInterrupted(
                    f"training of {label} {fold_dir.name} stopped by signal {stop.signal} at iteration {done}/{total}; checkpoint saved to {resume}, rerun to resume"
                )
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


def training_seconds(work: str | os.PathLike[str]) -> float:
    """Seconds the training iterations of ``work/log.tsv`` took (every run that resumed
    included; validation and checkpoints not), 0 without a readable log."""
    try:
        return float(pd.read_csv(Path(work) / "log.tsv", sep="\t")["seconds"].fillna(0).sum())
    except (OSError, KeyError, ValueError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return 0.0


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
