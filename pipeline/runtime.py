"""Device selection and mixed precision: one code path for CUDA and the CPU."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)


def select_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given (e.g. ``cuda:1``), else CUDA when available, else the CPU."""
    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype: bf16 on CUDA that supports it, else fp16 on CUDA; None on the CPU."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inference_dtype(device: torch.device, fast: bool) -> torch.dtype | None:
    """Autocast dtype for inference: with ``fast``, bf16 where the hardware has it
    (CUDA with bf16, CPUs with native bf16), fp16 on other CUDA devices; else fp32 (None)."""
    if not fast:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` for ``dtype``, or nothing (fp32) when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def memory_format(spatial_dims: int, device: torch.device) -> torch.memory_format:
    """channels-last (2D) / channels-last-3d (3D) on CUDA, contiguous elsewhere."""
    if device.type != "cuda":
        return torch.contiguous_format
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def maybe_compile(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(model)`` when ``enabled``, else ``model`` unchanged.

    The compiled module shares its parameters with ``model``, so checkpoints keep being
    written from (and loaded into) the plain module. The first batches of each input
    shape are slow while Inductor compiles (it needs a C++ compiler on the CPU and
    Triton on CUDA); it pays off over long training runs and large cohorts. Random ops
    fall back to eager ones, so a seeded run draws the same dropout masks either way.
    """
    if not enabled:
        return model
    import torch._inductor.config

    # Random ops (dropout) as in eager mode: the same seeds give the same run, compiled or not.
    torch._inductor.config.fallback_random = True
    log.info("compiling the network with torch.compile (the first iterations are slow)")
    return torch.compile(model)  # type: ignore[return-value]


def loader_workers(setting: int | str, device: torch.device) -> int:
    """Data-loading worker processes for ``training.num_workers``.

    ``auto``: none on the CPU (the network uses every core, and a batch is drawn in a few
    milliseconds next to a training step of seconds), on CUDA one per CPU core the process
    may use, keeping one for the training process, at most 8, so the GPU is not kept
    waiting. Batches are a function of the iteration, so the count never changes results.
    """
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores - 1))
