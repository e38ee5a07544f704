"""Joint decoding of landmark heatmaps and a confidence per landmark.

Why: two landmarks that look alike (anterior and posterior commissure, the two ends of the
corpus callosum) give each other's heatmap a second peak, and where the network is not yet
sure the wrong one can be the higher: the plain maximum then puts the landmark on its
partner, tens of millimetres away. What was chosen, for being simple and exact:

1. Candidates: per channel the ``candidates`` highest local maxima of the heatmap (maxima
   of a box about ``sigma_mm`` wide, so one blob gives one candidate), in world mm.
2. Joint choice: the combination (one candidate per landmark) that maximises
   ``sum_i log h_i - configuration_weight * sum_{i<j} |p_j - p_i - offsets_ij|^2 / (2 spread_ij^2)``,
   i.e. heatmap height (as a likelihood) against the fit to the pairwise offsets learned
   from the training landmarks (:mod:`pipeline.tasks.landmarks.configuration`). Every
   combination is scored when there are at most ``EXHAUSTIVE_LIMIT`` of them (6 landmarks of
   5 candidates: 15,625); beyond, iterated conditional modes from the per-channel maxima
   (each landmark in turn takes its best candidate given the others, until none changes).
   ``configuration_weight: 0`` (or no configuration) is the plain maximum of each channel.
3. The chosen peak is refined below the voxel (:func:`pipeline.tasks.landmarks.heatmaps.refine_peak`).

Confidence (``[0, 1]``) of each landmark, the product of

- ``height``: the heatmap value at the peak, clipped to ``[0, 1]`` (the targets peak at 1);
- ``sharpness``: ``min(1, sigma_mm / width)``, ``width`` (mm) the Gaussian width that the
  log-curvature of the heatmap at the peak implies (RMS over the axes; 0 for a flat or
  dipped peak) - a broad hill is not a landmark;
- ``agreement``: ``exp(-d^2 / (2 (2 s)^2))``, ``d`` the distance (mm) from the position the
  other landmarks expect and ``s`` its spread on the training cases (1 without a
  configuration; twice ``s``, :data:`AGREEMENT_SPREADS`, because a new case varies more
  than the cases the spread was measured on); a landmark more than 3 spreads off stops counting among the others
  (:meth:`Configuration.distances`), so one wrong landmark does not flag its neighbours;
- ``fold agreement`` (an ensemble of two or more folds): ``exp(-r^2 / (2 sigma_mm^2))``,
  ``r`` (mm) the RMS distance of each fold's own decoded landmark from the ensemble's
  (:func:`fold_spread_mm`); folds that disagree by more than a heatmap's width mean the
  models have not settled. 1 for a single model. Mirroring is not used: it swaps left and
  right landmarks (the two frontal horns) and would need a declared pairing.

A landmark with confidence below ``min_confidence`` is flagged in the prediction table.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from pipeline.io.images import Geometry
from pipeline.tasks.landmarks.configuration import Configuration
from pipeline.tasks.landmarks.geometry import index_metric, index_to_world
from pipeline.tasks.landmarks.heatmaps import refine_peak

#: Most combinations scored one by one; beyond, iterated conditional modes.
EXHAUSTIVE_LIMIT = 2**20
#: Scale of the agreement in training spreads: the spread measured on the training cases
#: themselves underestimates a new case's, and a right landmark 1.5 spreads off is common.
AGREEMENT_SPREADS = 2.0
#: Heights below this count as this in ``log h`` (the network may output zero or less).
MIN_HEIGHT = 1e-3


@dataclasses.dataclass(frozen=True)
class Decoded:
    """Decoded landmarks of one case; arrays ``(L, ...)``, rows in network output order.

    ``points``: continuous indices (numpy order) on the heatmaps' grid; ``world``: mm
    (ITK/LPS); ``peak``, ``sharpness``, ``agreement``, ``confidence``: see the module
    docstring (NaN where they do not apply); ``expected_distance_mm``: distance from the
    position the others expect; ``flagged``: confidence below the threshold.
    """

    points: np.ndarray
    world: np.ndarray
    peak: np.ndarray
    sharpness: np.ndarray
    expected_distance_mm: np.ndarray
    agreement: np.ndarray
    confidence: np.ndarray
    flagged: np.ndarray
    fold_spread_mm: np.ndarray | None = None

    def columns(self) -> dict[str, np.ndarray]:
        """The per-landmark columns of a prediction table."""
        return {
            "peak": self.peak,
            "sharpness": self.sharpness,
            "expected_distance_mm": self.expected_distance_mm,
            "fold_spread_mm": self.fold_spread_mm if self.fold_spread_mm is not None else np.full(len(self.points), np.nan),
            "confidence": self.confidence,
            "flagged": self.flagged,
        }


def local_maxima(heatmap: np.ndarray, count: int, radius: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` highest local maxima of one heatmap, highest first.

    A voxel is a local maximum when no voxel of the box of half-widths ``radius`` (voxels,
    numpy order) around it is higher. Returns ``(indices (K, dim) int, values (K,))``,
    ``1 <= K <= count`` (the global maximum is always the first).
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    size = [2 * int(r) + 1 for r in radius]
    peaks = np.flatnonzero(heatmap == ndimage.maximum_filter(heatmap, size=size, mode="constant", cval=-np.inf))
    values = heatmap.ravel()[peaks]
    order = np.argsort(-values, kind="stable")[:count]
    return np.stack(np.unravel_index(peaks[order], heatmap.shape), axis=1), values[order].astype(np.float64)


def peak_width_mm(heatmap: np.ndarray, peak: Sequence[int], spacing: Sequence[float]) -> float:
    """Gaussian width (mm) implied by the second differences of ``log heatmap`` at the integer
    ``peak`` (RMS over the axes that have both neighbours); ``inf`` where the peak is flat or
    not a maximum of the logarithm along an axis."""
    tiny = MIN_HEIGHT * 1e-3
    centre = np.log(max(float(heatmap[tuple(peak)]), tiny))
    widths = []
    for axis, step in enumerate(spacing):
        if not 0 < peak[axis] < heatmap.shape[axis] - 1:
            continue
        near = []
        for delta in (-1, 1):
            index = list(peak)
            index[axis] += delta
            near.append(np.log(max(float(heatmap[tuple(index)]), tiny)))
        curvature = near[0] - 2.0 * centre + near[1]  # = -step^2 / sigma^2 for a Gaussian
        if not curvature < 0:
            return float("inf")
        widths.append(step / np.sqrt(-curvature))
    return float(np.sqrt(np.mean(np.square(widths)))) if widths else float("inf")


def select_jointly(
    candidates: Sequence[np.ndarray], heights: Sequence[np.ndarray], configuration: Configuration | None, weight: float, limit: int = EXHAUSTIVE_LIMIT
) -> np.ndarray:
    """The chosen candidate of every landmark ``(L,)`` int (see the module docstring).

    Args:
        candidates: per landmark ``(K_i, dim)`` world points (mm).
        heights: per landmark ``(K_i,)`` heatmap values.
        configuration: the learned configuration (``None``: the highest candidates).
        weight: weight of the configuration term (>= 0).
        limit: most combinations scored exhaustively.
    """
    count = len(candidates)
    logs = [np.log(np.maximum(np.asarray(h, dtype=np.float64), MIN_HEIGHT)) for h in heights]
    best = np.array([int(np.argmax(v)) for v in logs])
    if configuration is None or weight == 0 or count < 2:
        return best
    cost = {(i, j): weight * configuration.pair_cost(i, j, candidates[i], candidates[j]) for i, j in itertools.combinations(range(count), 2)}
    sizes = [len(c) for c in candidates]
    if int(np.prod(sizes, dtype=np.float64)) <= limit:
        score = np.zeros(sizes)
        for i, v in enumerate(logs):
            score = score + v.reshape([-1 if a == i else 1 for a in range(count)])
        for (i, j), c in cost.items():
            shape = [1] * count
            shape[i], shape[j] = sizes[i], sizes[j]
            score = score - c.reshape(shape)
        return np.array(np.unravel_index(int(np.argmax(score)), sizes))
    for _ in range(100):  # iterated conditional modes: each sweep raises the score
        changed = False
        for i in range(count):
            local = logs[i].copy()
            for j in range(count):
                if j != i:
                    local -= cost[(i, j)][:, best[j]] if i < j else cost[(j, i)][best[j], :]
            choice = int(np.argmax(local))
            changed |= choice != best[i]
            best[i] = choice
        if not changed:
            break
    return best


def decode_heatmaps(heatmaps: np.ndarray, geometry: Geometry, settings: Mapping[str, Any], configuration: Configuration | None) -> Decoded:
    """Landmarks of one case from its heatmaps ``(L, *spatial)`` on the grid ``geometry``.

    ``settings``: the experiment's ``landmarks`` section (``sigma_mm``, ``refinement``,
    ``refinement_window``, ``candidates``, ``configuration_weight``, ``min_confidence``).
    """
    heatmaps = np.asarray(heatmaps)
    spacing = np.sqrt(np.diag(index_metric(geometry)))  # mm per index step, numpy order
    sigma = float(settings["sigma_mm"])
    radius = [max(1, int(round(sigma / s))) for s in spacing]
    found = [local_maxima(h, int(settings["candidates"]), radius) for h in heatmaps]
    worlds = [index_to_world(idx.astype(np.float64), geometry) for idx, _ in found]
    choice = select_jointly(worlds, [v for _, v in found], configuration, float(settings["configuration_weight"]))
    peaks = [found[k][0][c] for k, c in enumerate(choice)]
    points = np.array([refine_peak(h, [int(p) for p in peak], settings["refinement"], settings["refinement_window"]) for h, peak in zip(heatmaps, peaks)])
    points = points.reshape(len(heatmaps), -1)
    height = np.array([found[k][1][c] for k, c in enumerate(choice)])
    width = np.array([peak_width_mm(h, [int(p) for p in peak], spacing) for h, peak in zip(heatmaps, peaks)])
    sharpness = np.minimum(1.0, sigma / width)
    world = index_to_world(points, geometry)
    return _scored(points, world, height, sharpness, configuration, float(settings["min_confidence"]))


def score_points(points: np.ndarray, geometry: Geometry, configuration: Configuration | None, min_confidence: float) -> Decoded:
    """Confidence of landmarks found without heatmaps (direct regression): the agreement with
    the configuration alone (``peak`` and ``sharpness`` NaN). ``points``: ``(L, dim)`` indices."""
    points = np.asarray(points, dtype=np.float64)
    nan = np.full(len(points), np.nan)
    return _scored(points, index_to_world(points, geometry), nan, nan, configuration, min_confidence)


def _scored(
    points: np.ndarray, world: np.ndarray, height: np.ndarray, sharpness: np.ndarray, configuration: Configuration | None, min_confidence: float
) -> Decoded:
    """The :class:`Decoded` of chosen points: agreement with the configuration and confidence."""
    if configuration is None or len(points) < 2:
        distance = np.full(len(points), np.nan)
        agreement = np.ones(len(points))
    else:
        distance = configuration.distances(world)
        agreement = np.exp(-0.5 * (distance / (AGREEMENT_SPREADS * configuration.expected_spread)) ** 2)
    confidence = np.nan_to_num(np.clip(height, 0.0, 1.0), nan=1.0) * np.nan_to_num(sharpness, nan=1.0) * agreement
    return Decoded(points, world, height, sharpness, distance, agreement, confidence, confidence < min_confidence)


def fold_spread_mm(ensemble_world: np.ndarray, fold_worlds: Sequence[np.ndarray]) -> np.ndarray:
    """RMS distance (mm) per landmark ``(L,)`` of each fold's landmarks ``(L, dim)`` (mm) from
    the ensemble's ``(L, dim)`` (mm); NaN for fewer than two folds."""
    if len(fold_worlds) < 2:
        return np.full(len(ensemble_world), np.nan)
    offsets = np.stack([np.asarray(w, dtype=np.float64) for w in fold_worlds]) - np.asarray(ensemble_world, dtype=np.float64)[None]
    return np.sqrt(np.mean(np.sum(offsets**2, axis=-1), axis=0))


def with_fold_agreement(decoded: Decoded, fold_worlds: Sequence[np.ndarray], sigma_mm: float, min_confidence: float) -> Decoded:
    """``decoded`` (the ensemble's) with the fold agreement ``exp(-r^2 / (2 sigma_mm^2))`` of the
    folds' own landmarks ``(L, dim)`` (mm) in its confidence and flags (unchanged for fewer than
    two folds)."""
    spread = fold_spread_mm(decoded.world, fold_worlds)
    if len(fold_worlds) < 2:
        return dataclasses.replace(decoded, fold_spread_mm=spread)
    confidence = decoded.confidence * np.exp(-0.5 * (spread / float(sigma_mm)) ** 2)
    return dataclasses.replace(decoded, fold_spread_mm=spread, confidence=confidence, flagged=confidence < min_confidence)
