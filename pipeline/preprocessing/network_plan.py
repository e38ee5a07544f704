"""The plan's ``network`` section: patch, batch and U-Net topology with a reason for each choice.

:func:`plan_network` applies the rules of :mod:`pipeline.preprocessing.topology` to the
dataset (target spacing, resampled shapes) and the ``plan:`` settings; a patch or batch the
user wrote (or one the voxel budget chose) is taken as given and the topology fits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.preprocessing.topology import (
    CPU_BYTES_PER_ELEMENT,
    MAX_DATASET_SHARE,
    MAX_WIDTH,
    MIN_BATCH,
    MIN_EDGE,
    REFERENCE_BATCH,
    REFERENCE_ELEMENTS,
    REFERENCE_GB,
    cpu_training_bytes,
    deeplab_context,
    explain,
    feature_map_elements,
    fit_patch,
    memory_batch,
    memory_gb,
    pool_and_kernels,
    stage_widths,
)

INITIAL_SIDE = {3: "256^3", 2: "2048^2"}


def _mm(patch: Sequence[int], spacing: Sequence[float]) -> str:
    return " x ".join(f"{p * s:.0f}" for p, s in zip(patch, spacing))


def plan_network(
    spacing: Sequence[float],
    resampled: np.ndarray,
    num_classes: int,
    base_width: int,
    max_width: int | None,
    gpu_memory_gb: float | None,
    patch: Sequence[int] | None = None,
    patch_reason: str = "",
    batch: int | None = None,
    batch_reason: str = "",
) -> dict[str, Any]:
    """Patch, batch and network of the plan, each with a one-line reason.

    Args:
        spacing: target spacing in mm, numpy order (z, y, x).
        resampled: ``(cases, dims)`` image shapes at ``spacing``, numpy order.
        num_classes: output classes (background included).
        base_width, max_width: features of the first stage and the cap (None: 320 in 3D, 512 in 2D).
        gpu_memory_gb: memory of the training device for the memory model; None: no memory
            model (then ``patch`` and ``batch`` must be given).
        patch, batch: taken as given where not None, with ``patch_reason``/``batch_reason``.

    Returns:
        ``patch_size``, ``batch_size``, ``stages``, ``strides`` (``stages - 1`` per-axis
        entries), ``kernel_sizes`` (``stages`` entries), ``widths``, ``size_divisor``,
        ``feature_map_elements`` (per patch), ``memory_gb`` (of a batch, by nnU-Net's
        reference), ``cpu_memory_gb`` (of a float32 training step on the CPU), ``deeplab``
        (``output_stride``, ``aspp_rates`` for DeepLabV3+) and ``reasons``: one line (or one per stage) for each of them.
    """
    dims = len(spacing)
    cap = int(max_width or MAX_WIDTH[dims])
    median = np.median(np.round(np.asarray(resampled, dtype=float)), axis=0)
    median_text = [float(round(m, 1)) for m in median]
    reasons: dict[str, Any] = {}
    if patch is not None:
        topo = pool_and_kernels(spacing, patch, pad=False)
        reasons["patch_size"] = f"{list(topo.patch)} voxels ({_mm(topo.patch, spacing)} mm): {patch_reason}"
    elif gpu_memory_gb is None:
        raise ValueError("plan_network needs a patch or gpu_memory_gb")
    else:
        topo, start, steps = fit_patch(spacing, median, num_classes, gpu_memory_gb, base_width, cap)
        reasons["patch_size"] = (
            f"{list(topo.patch)} voxels ({_mm(topo.patch, spacing)} mm): a {INITIAL_SIDE[dims]}-voxel start of equal extent in mm on every axis, "
            f"clipped to the median image {median_text} to {start}, padded to the total stride {topo.divisor}, "
            f"shrunk {steps} time(s) along the axis largest relative to the median until batch {MIN_BATCH} fits {gpu_memory_gb:g} GB (plan.gpu_memory_gb)"
        )
    widths = stage_widths(topo.stages, base_width, cap)
    elements = feature_map_elements(topo.patch, topo.strides, widths, num_classes)
    dataset_voxels = float(np.prod(median, dtype=np.float64)) * len(resampled)
    if batch is not None:
        reasons["batch_size"] = f"{batch}: {batch_reason}"
    else:
        if gpu_memory_gb is None:
            raise ValueError("plan_network needs a batch or gpu_memory_gb")
        batch, by_memory, by_dataset = memory_batch(elements, dims, gpu_memory_gb, topo.patch, dataset_voxels)
        reasons["batch_size"] = (
            f"{batch}: {gpu_memory_gb:g} GB holds {by_memory} patch(es) by the memory model, {MAX_DATASET_SHARE:.0%} of the dataset's voxels "
            f"{by_dataset}; the smaller, at least {MIN_BATCH} (nnU-Net's bounds)"
        )
    strides, kernels, bottom = explain(topo, spacing)
    reasons["stages"] = (
        f"{topo.stages} stages: each axis is halved while its feature map has at least {2 * MIN_EDGE} voxels and its spacing is within 2x "
        f"of the finest; bottleneck feature map {bottom} voxels"
    )
    reasons["strides"] = strides
    reasons["kernel_sizes"] = kernels
    reasons["widths"] = f"{widths}: {base_width} features doubling per stage (plan.network_base_width), at most {cap} (plan.network_max_width)"
    reference = f"{REFERENCE_ELEMENTS[dims] / 1e6:.0f} M elements x batch {REFERENCE_BATCH[dims]} = {REFERENCE_GB:g} GB"
    reasons["memory_gb"] = f"{elements / 1e6:.1f} M feature-map elements per patch x batch {batch}, at nnU-Net's reference {reference} (GPU, mixed precision)"
    reasons["cpu_memory_gb"] = f"the same at {CPU_BYTES_PER_ELEMENT:g} bytes per element and patch, measured for a float32 training step on the CPU"
    output_stride, rates, reasons["deeplab"] = deeplab_context(topo.patch)
    return {
        "patch_size": [int(p) for p in topo.patch],
        "batch_size": int(batch),
        "stages": topo.stages,
        "strides": topo.strides,
        "kernel_sizes": topo.kernels,
        "widths": widths,
        "size_divisor": topo.divisor,
        "feature_map_elements": elements,
        "memory_gb": round(memory_gb(elements, int(batch), dims), 3),
        "cpu_memory_gb": round(cpu_training_bytes(elements, int(batch)) / 1e9, 3),
        "deeplab": {"output_stride": output_stride, "aspp_rates": rates},
        "reasons": reasons,
    }
