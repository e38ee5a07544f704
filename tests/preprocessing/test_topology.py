"""The planned network topology (pipeline/preprocessing/topology.py, network_plan.py) and `auto` model settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import validate_config
from pipeline.errors import SettingError
from pipeline.models import build_model
from pipeline.models.registry import check_settings, resolve_auto
from pipeline.preprocessing.network_plan import plan_network
from pipeline.preprocessing.plan import make_plan
from pipeline.preprocessing.topology import cpu_training_bytes, deeplab_context, feature_map_elements, memory_batch, pool_and_kernels, stage_widths
from tests.conftest import REPO


def test_anisotropic_axis_gets_kernel_1_and_is_pooled_late():
    # Prostate MRI (MSD Task05): 3.6 mm slices, 0.62 mm in-plane; nnU-Net v2 plans exactly this.
    topo = pool_and_kernels([3.6, 0.62, 0.62], [20, 320, 256])
    assert topo.strides == [[1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]]
    assert topo.kernels[:2] == [[1, 3, 3], [1, 3, 3]]
    assert all(k == [3, 3, 3] for k in topo.kernels[2:])
    assert topo.divisor == [4, 64, 64] and topo.patch == [20, 320, 256]


def test_isotropic_spacing_pools_every_axis_with_kernel_3():
    topo = pool_and_kernels([1.0, 1.0, 1.0], [64, 64, 64])
    assert topo.strides == [[2, 2, 2]] * 4  # 64 -> 4: an axis is pooled while it has at least 2 x 4 voxels
    assert topo.kernels == [[3, 3, 3]] * 5
    assert topo.stages == 5 and topo.divisor == [16, 16, 16]


def test_small_axis_stops_pooling_and_patch_is_padded_to_the_stride():
    topo = pool_and_kernels([1.0, 1.0], [20, 100])
    assert [s[0] for s in topo.strides] == [2, 2, 1, 1]  # 20 -> 10 -> 5: below 8, no more pooling
    assert topo.divisor == [4, 16] and topo.patch == [20, 112]


def test_widths_double_up_to_the_cap():
    assert stage_widths(6, 32, 320) == [32, 64, 128, 256, 320, 320]


def test_feature_map_elements_by_hand():
    # encoder 2 x 4 x 64 + 2 x 8 x 16, decoder (2 convs + transposed conv) x 4 x 64, output 2 x 64
    assert feature_map_elements([8, 8], [[2, 2]], [4, 8], num_classes=2) == 512 + 256 + 768 + 128


def test_memory_batch_has_nnunet_bounds():
    patch = [64, 64, 64]
    # plenty of memory, tiny dataset: the 5 % cap would give 0, the lower bound keeps 2
    assert memory_batch(1_000_000, 3, 8.0, patch, dataset_voxels=10 * 64**3)[0] == 2
    batch, by_memory, by_dataset = memory_batch(140_000_000, 3, 8.0, patch, dataset_voxels=1e9)
    assert (batch, by_memory) == (8, 8) and by_dataset > 8


def test_memory_model_shrinks_the_patch_and_says_why():
    resampled = np.array([[115, 320, 232], [110, 330, 240], [120, 310, 228]])
    net = plan_network([1.37, 1.25, 1.25], resampled, num_classes=2, base_width=32, max_width=None, gpu_memory_gb=8.0)
    assert net["patch_size"] == [80, 192, 160]  # nnU-Net v2's heart (Task02) patch
    assert net["stages"] == len(net["kernel_sizes"]) == len(net["strides"]) + 1 == len(net["widths"])
    assert net["memory_gb"] <= 8.0
    reasons = net["reasons"]
    assert "8 GB" in reasons["patch_size"] and "shrunk" in reasons["patch_size"]
    assert len(reasons["strides"]) == len(net["strides"]) and len(reasons["kernel_sizes"]) == net["stages"]
    assert all(isinstance(r, str) and r for r in [reasons["stages"], reasons["widths"], reasons["batch_size"]])
    smaller = plan_network([1.37, 1.25, 1.25], resampled, 2, 32, None, gpu_memory_gb=4.0)
    assert np.prod(smaller["patch_size"]) < np.prod(net["patch_size"])


def _config(plan: dict, model: dict | None = None) -> dict:
    return validate_config(
        {
            "dataset": {"manifest": "m", "labels": {0: "bg", 1: "a"}},
            "plan": plan,
            "experiments": {"e": {"model": model or {"name": "unet"}}},
        }
    )


FINGERPRINT = {
    "spacings": [[0.62, 0.62, 3.6], [0.6, 0.6, 4.0], [0.65, 0.65, 3.0]],
    "shapes": [[20, 320, 320], [18, 330, 330], [24, 300, 300]],
    "intensity": {"image": {"mean": 0.0, "std": 1.0, "percentile_00_5": -1.0, "percentile_50_0": 0.0, "percentile_99_5": 1.0}},
    "class_totals": {"bg": 100, "a": 10},
}


def test_plan_holds_the_network_with_reasons():
    plan = make_plan(FINGERPRINT, _config({"gpu_memory_gb": 8}))
    net = plan["network"]
    assert net["strides"][0] == [1, 2, 2] and net["kernel_sizes"][0] == [1, 3, 3]
    assert plan["patch_size"] == net["patch_size"] and plan["batch_size"] == net["batch_size"] >= 2
    assert set(net["reasons"]) >= {"patch_size", "batch_size", "stages", "strides", "kernel_sizes", "widths"}


def test_explicit_settings_win():
    plan = make_plan(FINGERPRINT, _config({"gpu_memory_gb": 8, "patch_size": [16, 128, 128], "batch_size": 3}))
    assert plan["patch_size"] == [16, 128, 128] and plan["batch_size"] == 3
    assert plan["network"]["reasons"]["patch_size"].endswith("plan.patch_size (given)")
    assert plan["network"]["strides"][0] == [1, 2, 2]  # the topology fits the given patch
    # without gpu_memory_gb the voxel budgets choose as before
    old = make_plan(FINGERPRINT, _config({"patch_voxels": 48**3}))
    assert np.prod(old["patch_size"]) <= 48**3 and "patch_voxels" in old["network"]["reasons"]["patch_size"]
    model = resolve_auto({"name": "unet", "channels": [4, 8, 16], "strides": "auto", "kernel_size": 3}, {"network": {"strides": [[1, 2, 2], [2, 2, 2]]}})
    assert model == {"name": "unet", "channels": [4, 8, 16], "strides": [[1, 2, 2], [2, 2, 2]], "kernel_size": 3}


def test_a_patch_with_the_wrong_number_of_values_is_refused():
    with pytest.raises(SettingError, match=r"plan.patch_size \[64, 64\] has 2 values, the images have 3 dimensions"):
        config = _config({})
        config["plan"]["patch_size"] = [64, 64]  # past the config check, as a hand-made config
        make_plan(FINGERPRINT, config)


def test_memory_too_small_for_any_patch_is_refused():
    with pytest.raises(SettingError, match="plan.gpu_memory_gb 1e-09 GB does not hold a batch of 2"):
        plan_network([1.0, 1.0, 1.0], np.array([[64, 64, 64]]), 2, 32, None, gpu_memory_gb=1e-9)


def test_auto_needs_a_planned_network():
    with pytest.raises(SettingError, match="no 'network' section"):
        resolve_auto({"name": "unet", "channels": "auto"}, {})


def test_config_with_auto_passes_the_model_checks():
    config = _config({}, {"name": "unet", "channels": "auto", "strides": "auto", "kernel_size": "auto"})
    assert config["experiments"]["e"]["model"]["strides"] == "auto"
    check_settings("unet", 3, {"channels": [4, 8, 16], "strides": "auto", "kernel_size": "auto"})


def test_unet_from_the_planned_topology_runs_forward():
    plan = make_plan(FINGERPRINT, _config({"gpu_memory_gb": 8, "patch_size": [12, 48, 48], "network_base_width": 2, "network_max_width": 8}))
    model = resolve_auto({"name": "unet", "channels": "auto", "strides": "auto", "kernel_size": "auto"}, plan)
    assert model["strides"][0] == [1, 2, 2] and model["kernel_size"][0] == [1, 3, 3] and max(model["channels"]) == 8
    net = build_model("unet", 3, 1, 2, **{k: v for k, v in model.items() if k != "name"})
    conv = net.encoder[0].conv1.conv
    assert tuple(conv.kernel_size) == (1, 3, 3)
    out = net(torch.randn(1, 1, 12, 48, 48))
    assert out.shape == (1, 2, 12, 48, 48)


MEASURE = """
import json, sys, torch
from pipeline.models import build_model
from pipeline.preprocessing.topology import pool_and_kernels, stage_widths
torch.manual_seed(0)
torch.set_num_threads(1)
def rss(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
peaks = []
for patch in json.loads(sys.argv[1]):
    topo = pool_and_kernels([1.0, 1.0, 1.0], patch, pad=False)
    net = build_model("unet", 3, 1, 3, channels=stage_widths(topo.stages, 8, 64), strides=topo.strides, kernel_size=topo.kernels)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99)
    x, y = torch.randn(2, 1, *patch), torch.randint(0, 3, (2, *patch))
    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    step()  # first step: lazy buffers, momentum
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident size
    base = rss("VmRSS")
    step()
    peaks.append(rss("VmHWM") - base)
print(json.dumps(peaks))
"""


@pytest.mark.slow  # about 20 s alone, a minute on a loaded machine
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak resident size")
def test_memory_model_predicts_the_peak_of_a_cpu_training_step():
    # Large tensors are mmap'ed (MALLOC_MMAP_THRESHOLD_), so freed memory leaves the process
    # and its peak resident size is the peak of live memory.
    patches = [[32, 32, 32], [48, 48, 48], [32, 64, 96]]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(patches)], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    measured = json.loads(run.stdout)
    for patch, peak in zip(patches, measured):
        topo = pool_and_kernels([1.0, 1.0, 1.0], patch, pad=False)
        predicted = cpu_training_bytes(feature_map_elements(patch, topo.strides, stage_widths(topo.stages, 8, 64), 3), 2)
        assert abs(predicted - peak) <= 0.25 * peak, (patch, predicted, peak)


def test_deeplab_context_reproduces_the_demo_choice_and_the_paper():
    assert deeplab_context([48, 48, 48])[:2] == (8, [1, 2, 3])  # the demo's hand-set stride 8 and rates 1-2-3
    assert deeplab_context([528, 528])[:2] == (16, [6, 12, 18])  # the paper's crops: a 33-pixel feature map
    plan = make_plan(FINGERPRINT, _config({"patch_size": [16, 48, 48], "batch_size": 2}))
    model = resolve_auto({"name": "deeplabv3plus", "output_stride": "auto", "aspp_rates": "auto"}, plan)
    assert (model["output_stride"], model["aspp_rates"]) == (8, [1])  # 2 feature-map voxels along z: one rate
    net = build_model("deeplabv3plus", 3, 1, 2, base_channels=2, output_stride=model["output_stride"], aspp_rates=model["aspp_rates"])
    assert net(torch.randn(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    assert "output stride 8" in plan["network"]["reasons"]["deeplab"]
    check_settings("deeplabv3plus", 3, {"output_stride": "auto", "aspp_rates": "auto"})
