"""The network topology of the plan: stages, strides and kernel sizes per axis, widths, patch and batch.

The rules are those of nnU-Net v2's planner (``get_pool_and_conv_props`` and
``ExperimentPlanner.get_plans_for_configuration``), restated here in numpy:

- Pooling: at every stage, each axis whose feature map is still at least ``2 * MIN_EDGE``
  voxels and whose current spacing is within a factor 2 of the finest current spacing is
  halved (stride 2); the others keep stride 1. A lone pooled axis must be at least
  ``3 * MIN_EDGE`` voxels. So an anisotropic axis is pooled only once the fine axes have
  been pooled up to its spacing.
- Kernels: an axis gets kernel 3 from the first stage at which its spacing is within a
  factor 2 of the finest (kernel 1 before: no convolution across thick slices); the
  bottleneck is 3 along every axis.
- Widths: ``base`` features doubling per stage, capped (320 in 3D, 512 in 2D).
- Memory model: the number of feature-map elements one patch produces in the U-Net's
  convolutions (two per stage in the encoder and decoder, the transposed convolutions and the
  output), as nnU-Net's ``compute_conv_feature_map_size``; nnU-Net's reference is 560 M
  elements (3D, batch 2) or 85 M (2D, batch 12) for 8 GB of GPU memory.
- Patch: a 256^3-voxel (2D: 2048^2) start with the aspect of the spacing (so its shape in mm
  is a cube), clipped to the median image shape, padded to the network's total stride, then
  shrunk along the axis largest relative to the median shape until batch 2 fits the memory.
- Batch: what fills the memory, at most 5 % of the dataset's voxels, at least 2.

All shapes, spacings, strides and kernels here are in numpy axis order (z, y, x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.errors import SettingError

#: Smallest edge (voxels) of a feature map at the bottleneck (nnU-Net's UNet_featuremap_min_edge_length).
MIN_EDGE = 4
#: Two axes are pooled together while their spacings are within this factor.
SPACING_FACTOR = 2.0
#: Feature-map elements per patch that fit ``REFERENCE_GB`` at the reference batch (nnU-Net v2).
REFERENCE_ELEMENTS = {3: 560_000_000, 2: 85_000_000}
REFERENCE_BATCH = {3: 2, 2: 12}
REFERENCE_GB = 8.0
#: Width cap per dimension (nnU-Net: 320 in 3D, 512 in 2D).
MAX_WIDTH = {3: 320, 2: 512}
#: A batch sees at most this share of the dataset's voxels (nnU-Net's overfitting guard) ...
MAX_DATASET_SHARE = 0.05
#: ... but holds at least this many patches (nnU-Net's lower bound).
MIN_BATCH = 2
#: Voxels of the initial patch per dimension, before it is clipped and shrunk.
INITIAL_VOXELS = {3: 256**3, 2: 2048**2}


@dataclass(frozen=True)
class Topology:
    """Pooling and kernel layout for one patch.

    Attributes:
        patch: the patch (voxels per axis), padded to ``divisor`` where it was derived.
        strides: one per-axis stride per step between stages (``stages - 1`` entries).
        kernels: one per-axis kernel size per stage (``stages`` entries; the last is the bottleneck).
        divisor: the total stride per axis (what the patch must be a multiple of).
    """

    patch: list[int]
    strides: list[list[int]]
    kernels: list[list[int]]
    divisor: list[int]

    @property
    def stages(self) -> int:
        return len(self.kernels)


def pad_to_multiple(shape: Sequence[float], divisor: Sequence[int]) -> list[int]:
    """Smallest multiple of ``divisor`` per axis that is at least ``shape`` (a float shape rounds up)."""
    return [int(np.ceil(float(s) / d) * d) for s, d in zip(shape, divisor)]


def pool_and_kernels(spacing: Sequence[float], patch: Sequence[float], pad: bool = True, min_edge: int = MIN_EDGE) -> Topology:
    """Strides and kernel sizes of the stages for ``patch`` at ``spacing`` (mm), nnU-Net's rules.

    Args:
        spacing: voxel spacing in mm, numpy order.
        patch: patch size in voxels, numpy order (may be fractional: a clipped median shape).
        pad: return the patch padded to the total stride (else the patch as given, rounded).
    """
    dims = len(spacing)
    current = [float(s) for s in spacing]
    size = [float(p) for p in patch]
    pools = [0] * dims
    kernel = [1] * dims
    strides: list[list[int]] = []
    kernels: list[list[int]] = []
    while True:
        axes = [a for a in range(dims) if size[a] >= 2 * min_edge]
        if not axes:
            break
        finest = min(current[a] for a in axes)
        axes = [a for a in axes if current[a] / finest < SPACING_FACTOR]
        if len(axes) == 1 and size[axes[0]] < 3 * min_edge:
            break
        if not axes:
            break
        finest_all = min(current)
        kernel = [3 if k == 3 or current[a] / finest_all < SPACING_FACTOR else 1 for a, k in enumerate(kernel)]
        kernels.append(list(kernel))
        stride = [2 if a in axes else 1 for a in range(dims)]
        for a in axes:
            pools[a] += 1
            current[a] *= 2
            size[a] = float(np.ceil(size[a] / 2))
        strides.append(stride)
    kernels.append([3] * dims)
    divisor = [2**p for p in pools]
    padded = pad_to_multiple(patch, divisor) if pad else [int(round(float(p))) for p in patch]
    return Topology(padded, strides, kernels, divisor)


def stage_widths(stages: int, base: int, cap: int) -> list[int]:
    """Features per stage: ``base`` doubling per stage, at most ``cap``."""
    return [min(cap, base * 2**i) for i in range(stages)]


def feature_map_elements(patch: Sequence[int], strides: Sequence[Sequence[int]], widths: Sequence[int], num_classes: int, convs: int = 2) -> int:
    """Feature-map elements one patch produces in the U-Net's convolutions (the memory model).

    Encoder stage ``s``: ``convs`` maps of ``widths[s]`` features at the stage's resolution;
    decoder stage ``s``: ``convs`` maps and the transposed convolution's output at the same
    size; the output layer: ``num_classes`` maps at full resolution. Sizes are floor-divided
    per stage, as nnU-Net counts them.
    """
    sizes = [list(int(p) for p in patch)]
    for stride in strides:
        sizes.append([s // t for s, t in zip(sizes[-1], stride)])
    total = sum(convs * widths[s] * int(np.prod(sizes[s])) for s in range(len(widths)))
    total += sum((convs + 1) * widths[s] * int(np.prod(sizes[s])) for s in range(len(widths) - 1))
    return int(total + num_classes * int(np.prod(sizes[0])))


def _memory_fits(elements: int, dims: int, memory_gb: float) -> bool:
    reference = REFERENCE_ELEMENTS[dims] * memory_gb / REFERENCE_GB
    return elements / REFERENCE_BATCH[dims] * MIN_BATCH <= reference


def fit_patch(
    spacing: Sequence[float], median_shape: Sequence[float], num_classes: int, memory_gb: float, base: int, cap: int
) -> tuple[Topology, list[int], int]:
    """The largest patch whose network fits ``memory_gb`` at batch 2 (nnU-Net's search).

    Returns:
        the topology (its ``patch`` is the chosen patch), the initial clipped patch, and the
        number of shrinking steps taken.
    """
    dims = len(spacing)
    aspect = 1.0 / np.asarray(spacing, dtype=float)
    start = [round(float(v)) for v in aspect * (INITIAL_VOXELS[dims] / np.prod(aspect)) ** (1.0 / dims)]
    clipped = [min(float(s), float(m)) for s, m in zip(start, median_shape)]
    topo = pool_and_kernels(spacing, clipped)
    steps = 0
    while not _memory_fits(feature_map_elements(topo.patch, topo.strides, stage_widths(topo.stages, base, cap), num_classes), dims, memory_gb):
        ratios = [p / float(m) for p, m in zip(topo.patch, median_shape)]
        axis = int(np.argsort(ratios, kind="stable")[-1])
        trial = list(topo.patch)
        trial[axis] -= topo.divisor[axis]
        step = pool_and_kernels(spacing, trial).divisor[axis]
        shrunk = list(topo.patch)
        shrunk[axis] -= step
        if shrunk[axis] < 1:
            raise SettingError(
                f"plan.gpu_memory_gb {memory_gb:g} GB does not hold a batch of {MIN_BATCH} of the smallest patch {topo.patch} of the planned U-Net; "
                "give more memory, or plan.patch_size and plan.batch_size"
            )
        topo = pool_and_kernels(spacing, shrunk)
        steps += 1
    return topo, [int(round(c)) for c in clipped], steps


def memory_batch(elements: int, dims: int, memory_gb: float, patch: Sequence[int], dataset_voxels: float) -> tuple[int, int, int]:
    """nnU-Net's batch: ``(batch, what the memory allows, the 5 %-of-the-dataset cap)``, at least 2."""
    reference = REFERENCE_ELEMENTS[dims] * memory_gb / REFERENCE_GB
    by_memory = round(reference / elements * REFERENCE_BATCH[dims])
    by_dataset = round(dataset_voxels * MAX_DATASET_SHARE / float(np.prod(patch, dtype=np.float64)))
    return max(min(by_memory, by_dataset), MIN_BATCH), int(by_memory), int(by_dataset)


#: DeepLabV3+'s ASPP rates 6, 12, 18 (output stride 16, 513-pixel crops) as shares of its 33-pixel feature map.
ASPP_SHARES = (6 / 33, 12 / 33, 18 / 33)
#: DeepLabV3+ takes output stride 16 while the smallest patch edge leaves this many feature-map voxels, else 8.
MIN_CONTEXT = 6


def deeplab_context(patch: Sequence[int]) -> tuple[int, list[int], str]:
    """DeepLabV3+'s output stride and ASPP rates for ``patch``: ``(stride, rates, reason)``.

    The rates keep the paper's proportions to the feature map along the patch's smallest axis
    (the backbone strides every axis alike), at least 1, without repeats.
    """
    smallest = min(int(p) for p in patch)
    stride = 16 if smallest / 16 >= MIN_CONTEXT else 8
    side = smallest / stride
    rates = sorted({max(1, round(share * side)) for share in ASPP_SHARES})
    reason = (
        f"output stride {stride}: the smallest patch edge {smallest} leaves {side:g} feature-map voxels "
        f"({'at least' if stride == 16 else 'fewer than'} {MIN_CONTEXT} at stride 16); ASPP rates {rates}: "
        f"the paper's 6, 12, 18 on a 33-voxel feature map, scaled to {side:g}"
    )
    return stride, rates, reason


#: Bytes per feature-map element and patch of a float32 training step on the CPU (forward,
#: cross-entropy, backward, SGD step of the U-Net): 9.8 to 10.0 measured at 32^3 to 64^3 and
#: 32x64x96, batch 2 (tests/preprocessing/test_topology.py checks it to 25 %).
CPU_BYTES_PER_ELEMENT = 10.0


def cpu_training_bytes(elements: int, batch: int) -> float:
    """Predicted peak memory (bytes) a float32 training step on the CPU adds, for ``elements``
    feature-map elements per patch (:func:`feature_map_elements`) and ``batch`` patches."""
    return CPU_BYTES_PER_ELEMENT * elements * batch


def memory_gb(elements: int, batch: int, dims: int) -> float:
    """GPU memory (GB) a training step needs by nnU-Net's reference: ``elements`` per patch, ``batch`` patches."""
    return REFERENCE_GB * elements * batch / (REFERENCE_ELEMENTS[dims] * REFERENCE_BATCH[dims])


def _axes(dims: int) -> str:
    return "zyx"[3 - dims :]


def _stride_reason(step: int, stride: Sequence[int], spacing: Sequence[float], size: Sequence[float], axes: str) -> str:
    """Why step ``step`` (stage ``step`` to ``step + 1``) pools the axes it does."""
    kept = []
    for a, s in enumerate(stride):
        if s == 2:
            continue
        if size[a] < 2 * MIN_EDGE:
            kept.append(f"{axes[a]} is {size[a]:g} voxels, below {2 * MIN_EDGE}")
        elif spacing[a] / min(spacing) >= SPACING_FACTOR:
            kept.append(f"{axes[a]} at {spacing[a]:.3g} mm is {SPACING_FACTOR:g}x or more the finest {min(spacing):.3g} mm")
        else:
            kept.append(f"{axes[a]} is kept with the others")
    pooled = ", ".join(axes[a] for a, s in enumerate(stride) if s == 2)
    why = f"halves {pooled}" + (f"; not pooled: {'; '.join(kept)}" if kept else " (all axes within 2x of the finest spacing)")
    return f"stage {step} -> {step + 1}: stride {list(stride)}: {why}"


def _kernel_reason(stage: int, kernel: Sequence[int], spacing: Sequence[float], axes: str, last: bool) -> str:
    if last:
        return f"stage {stage} (bottleneck): kernel {list(kernel)}, 3 along every axis as nnU-Net"
    thin = [f"{axes[a]} at {spacing[a]:.3g} mm" for a, k in enumerate(kernel) if k == 1]
    if not thin:
        return f"stage {stage}: kernel {list(kernel)}: every axis within 2x of the finest spacing {min(spacing):.3g} mm"
    return f"stage {stage}: kernel {list(kernel)}: no convolution across {', '.join(thin)} (2x or more the finest {min(spacing):.3g} mm)"


def explain(topo: Topology, spacing: Sequence[float]) -> tuple[list[str], list[str], list[int]]:
    """One line per pooling step and per stage saying why, and the bottleneck feature map size."""
    axes = _axes(len(spacing))
    current, size = [float(s) for s in spacing], [float(p) for p in topo.patch]
    strides, kernels = [], []
    for stage in range(topo.stages):
        kernels.append(_kernel_reason(stage, topo.kernels[stage], current, axes, stage == topo.stages - 1))
        if stage < len(topo.strides):
            stride = topo.strides[stage]
            strides.append(_stride_reason(stage, stride, current, size, axes))
            current = [c * s for c, s in zip(current, stride)]
            size = [float(np.ceil(z / s)) for z, s in zip(size, stride)]
    return strides, kernels, [int(z) for z in size]
