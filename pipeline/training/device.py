"""Device selection and mixed precision: one code path for CUDA and the CPU."""

from __future__ import annotations

import contextlib
import logging
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
