"""Joint decoding against the learned configuration, and the confidence of each landmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.io.images import Geometry
from pipeline.tasks.landmarks.configuration import Configuration, learn_configuration, stored_configuration
from pipeline.tasks.landmarks.decoding import decode_heatmaps, fold_spread_mm, local_maxima, select_jointly
from pipeline.tasks.landmarks.geometry import index_metric, index_to_world
from pipeline.tasks.landmarks.heatmaps import gaussian_heatmaps, locate_peaks
from pipeline.tasks.landmarks.predict import Locator
from pipeline.tasks.landmarks.table import LandmarkError

# 2D grid, 1.5 x 1 mm pixels, origin away from zero: world = origin + (x, y) * spacing.
GEOMETRY = Geometry(size=(60, 40), spacing=(1.0, 1.5), origin=(-20.0, 7.0), direction=(1, 0, 0, 1))
METRIC = index_metric(GEOMETRY)
# Numpy-order indices (y, x) of three landmarks: A and B look alike (same blob), C elsewhere.
TRUTH = np.array([[10.0, 12.0], [10.0, 40.0], [30.0, 26.0]])
SETTINGS = {"sigma_mm": 3.0, "refinement": "quadratic", "refinement_window": 2, "candidates": 4, "configuration_weight": 1.0, "min_confidence": 0.2}


def configuration(min_spread_mm: float = 2.0) -> Configuration:
    """Learned from five training cases: the truth shifted and jittered by up to 1.5 mm."""
    rng = np.random.default_rng(0)
    world = index_to_world(TRUTH, GEOMETRY)
    cases = [world + rng.uniform(-20, 20, size=2) + rng.uniform(-1.5, 1.5, size=world.shape) for _ in range(5)]
    return learn_configuration(cases, ["A", "B", "C"], min_spread_mm)


def look_alike_heatmaps() -> np.ndarray:
    """A's heatmap peaks higher on B (its look-alike) than on A; B and C are right."""
    blobs = gaussian_heatmaps(TRUTH, GEOMETRY.shape_numpy, METRIC, 3.0)
    return np.stack([0.6 * blobs[0] + 0.95 * blobs[1], blobs[1], blobs[2]])


def test_plain_maximum_jumps_to_the_look_alike_and_joint_decoding_does_not() -> None:
    heatmaps = look_alike_heatmaps()
    plain, _ = locate_peaks(heatmaps, "quadratic")
    assert np.linalg.norm(plain[0] - TRUTH[1]) < 0.5  # A put on B: 28 pixels away from A
    decoded = decode_heatmaps(heatmaps, GEOMETRY, SETTINGS, configuration())
    np.testing.assert_allclose(decoded.points, TRUTH, atol=0.05)
    assert not decoded.flagged.any()
    # without a configuration (or with weight 0) the decoding is the plain maximum
    for config, settings in ((None, SETTINGS), (configuration(), {**SETTINGS, "configuration_weight": 0.0})):
        np.testing.assert_allclose(decode_heatmaps(heatmaps, GEOMETRY, settings, config).points, plain, atol=1e-9)


def test_iterated_conditional_modes_agree_with_the_exhaustive_choice() -> None:
    heatmaps = look_alike_heatmaps()
    found = [local_maxima(h, 4, (2, 3)) for h in heatmaps]
    worlds = [index_to_world(i.astype(float), GEOMETRY) for i, _ in found]
    heights = [v for _, v in found]
    exhaustive = select_jointly(worlds, heights, configuration(), 1.0)
    np.testing.assert_array_equal(select_jointly(worlds, heights, configuration(), 1.0, limit=1), exhaustive)
    assert [found[k][0][c].tolist() for k, c in enumerate(exhaustive)] == TRUTH.astype(int).tolist()


def test_local_maxima_are_one_per_blob_highest_first() -> None:
    heat = gaussian_heatmaps(TRUTH, GEOMETRY.shape_numpy, METRIC, 3.0) * np.array([0.5, 1.0, 0.8])[:, None, None]
    indices, values = local_maxima(heat.max(0), 10, (2, 3))
    assert indices[:3].tolist() == [[10, 40], [30, 26], [10, 12]]
    np.testing.assert_allclose(values[:3], [1.0, 0.8, 0.5], atol=1e-6)


def test_a_landmark_without_a_clear_peak_is_flagged() -> None:
    heatmaps = gaussian_heatmaps(TRUTH, GEOMETRY.shape_numpy, METRIC, 3.0)
    heatmaps[2] = 0.05 + 0.01 * np.random.default_rng(1).random(GEOMETRY.shape_numpy)  # C: low noise, no peak
    decoded = decode_heatmaps(heatmaps, GEOMETRY, SETTINGS, configuration())
    assert decoded.flagged.tolist() == [False, False, True]
    assert decoded.confidence[2] < 0.06 and decoded.confidence[:2].min() > 0.5


def test_a_broad_peak_is_flagged_even_when_high() -> None:
    heatmaps = gaussian_heatmaps(TRUTH, GEOMETRY.shape_numpy, METRIC, 3.0)
    heatmaps[1] = gaussian_heatmaps(TRUTH[1:2], GEOMETRY.shape_numpy, METRIC, 30.0)[0]  # 10 x too wide
    decoded = decode_heatmaps(heatmaps, GEOMETRY, SETTINGS, None)
    assert decoded.sharpness[1] == pytest.approx(0.1, rel=0.05) and decoded.sharpness[0] == pytest.approx(1.0)
    assert decoded.flagged.tolist() == [False, True, False]


def test_a_landmark_far_from_where_the_others_expect_it_is_flagged() -> None:
    moved = TRUTH.copy()
    moved[2] += [8.0, 0.0]  # C 12 mm off its place, with a clean peak: nothing else to choose
    heatmaps = gaussian_heatmaps(moved, GEOMETRY.shape_numpy, METRIC, 3.0)
    decoded = decode_heatmaps(heatmaps, GEOMETRY, SETTINGS, configuration())
    assert decoded.flagged.tolist() == [False, False, True]
    assert decoded.expected_distance_mm[2] > 8.0 and decoded.peak[2] == pytest.approx(1.0)


def channel_picker(channels: list[int], inputs: int) -> torch.nn.Module:
    """A "fold model": a 1x1 convolution whose output k is input channel ``channels[k]``."""
    conv = torch.nn.Conv2d(inputs, len(channels), 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for k, c in enumerate(channels):
            conv.weight[k, c] = 1.0
    return conv.eval()


def test_folds_that_disagree_flag_the_landmark_and_folds_that_agree_do_not() -> None:
    moved = TRUTH.copy()
    moved[2] += [8.0, 0.0]  # the second fold puts C 12 mm lower
    image = np.concatenate([gaussian_heatmaps(TRUTH, GEOMETRY.shape_numpy, METRIC, 3.0), gaussian_heatmaps(moved, GEOMETRY.shape_numpy, METRIC, 3.0)])
    folds = [channel_picker([0, 1, 2], 6), channel_picker([0, 1, 5], 6)]
    arch = {"method": "heatmap", "patch_size": [32, 32], "num_classes": 3}
    one = Locator(folds[:1], arch, SETTINGS, None, 0.5).locate(image.astype(np.float32), GEOMETRY)
    assert np.isnan(one.fold_spread_mm).all() and not one.flagged.any()
    both = Locator(folds, arch, SETTINGS, None, 0.5).locate(image.astype(np.float32), GEOMETRY)
    assert both.fold_spread_mm[:2] == pytest.approx([0.0, 0.0], abs=0.05)
    assert both.fold_spread_mm[2] == pytest.approx(12.0 / np.sqrt(2), abs=0.3)  # one fold at the ensemble's peak, one 12 mm off
    assert both.flagged.tolist() == [False, False, True]
    np.testing.assert_allclose(both.world[:2], one.world[:2], atol=1e-4)


def test_fold_spread_is_the_rms_distance_from_the_ensemble() -> None:
    ensemble = np.zeros((2, 3))
    folds = [np.array([[3.0, 0, 0], [0, 0, 0]]), np.array([[0, 4.0, 0], [0, 0, 0]])]
    np.testing.assert_allclose(fold_spread_mm(ensemble, folds), [np.sqrt(12.5), 0.0])
    assert np.isnan(fold_spread_mm(ensemble, folds[:1])).all()


def test_configuration_is_learned_exactly_and_survives_a_checkpoint(tmp_path) -> None:
    base = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 20.0, 0.0]])
    cases = [base + shift for shift in ([0, 0, 0], [5, -3, 2], [1, 1, 1])]
    config = learn_configuration(cases, ["P", "Q", "R"], 0.5)
    np.testing.assert_allclose(config.offsets[0, 1], [10, 0, 0], atol=1e-12)
    np.testing.assert_allclose(config.offsets[1, 2], [-10, 20, 0], atol=1e-12)
    np.testing.assert_allclose(config.spread, 0.5)  # a rigid translation: spread at the floor
    np.testing.assert_allclose(config.expected(base + 7.0), base + 7.0, atol=1e-12)
    torch.save({"landmark_configuration": config.to_dict()}, tmp_path / "c.pt")
    back = stored_configuration(torch.load(tmp_path / "c.pt", weights_only=True), ["P", "Q", "R"])
    np.testing.assert_array_equal(back.offsets, config.offsets)
    assert back.cases == 3 and stored_configuration({}, ["P"]) is None
    with pytest.raises(LandmarkError, match=r"configuration is of \['P', 'Q', 'R'\], but the network predicts \['P', 'Q'\]"):
        stored_configuration({"landmark_configuration": config.to_dict()}, ["P", "Q"], "best.pt")
    with pytest.raises(LandmarkError, match="at least one training case"):
        learn_configuration([], ["P"], 1.0)
