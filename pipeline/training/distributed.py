"""Data-parallel training across processes (``torchrun``), one GPU per process.

``torchrun --nproc_per_node N -m pipeline train ...`` (or ``--gpus N`` on the train stage,
which launches it) sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; each process then trains on
its own batches, gradients are averaged by DistributedDataParallel, and only rank 0 writes
logs and checkpoints. Without those variables everything runs in one process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Context:
    """Where this process stands: rank, world size, and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> Context:
    """Join the process group when launched by torchrun (NCCL on CUDA, else Gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    log.info("rank %d of %d on %s", rank, world, device)
    return Context(rank=rank, world_size=world, device=device)


def barrier(context: Context) -> None:
    """Wait for every rank (no-op in one process)."""
    if context.distributed:
        dist.barrier()


def teardown(context: Context) -> None:
    """Leave the process group."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of all parameters and buffers, to compare replicas across ranks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def replicas_agree(model: torch.nn.Module, context: Context) -> bool:
    """True when every rank holds the same weights (always true in one process)."""
    if not context.distributed:
        return True
    digests: list[str | None] = [None] * context.world_size
    dist.all_gather_object(digests, weights_digest(model))
    return len(set(digests)) == 1


def relaunch_with_torchrun(processes: int, argv: Sequence[str]) -> int:
    """Run ``python -m pipeline <argv>`` under ``torchrun`` with ``processes`` workers."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "pipeline", *argv]
    log.info("launching %d training processes: %s", processes, " ".join(command))
    return subprocess.call(command)
