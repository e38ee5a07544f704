"""The spatial configuration of a landmark set, learned from the training cases' landmarks.

What is learned (world millimetres, ITK/LPS, from the ``N`` training cases):

- for every pair ``(i, j)`` the mean offset ``offsets[i, j] = mean(p_j - p_i)`` and its spread
  ``spread[i, j]``, the RMS distance of the cases' offsets from that mean (``min_spread_mm``
  at least, so that a few similar training cases do not make the model rigid);
- for every landmark the spread of its position around the one the others expect
  (:meth:`Configuration.expected`), measured the same way on the training cases.

Why pairwise offsets: they need no registration and no landmark correspondences beyond the
table, are invariant to translation (the field of view of a case does not matter), and a
wrong landmark that sits on its look-alike partner is many spreads away from the offsets of
every other pair. They are not invariant to large rotations or scale changes: the spread
measured on the training cases is what the model tolerates. The configuration is stored in
``best.pt`` as a plain dict (:meth:`Configuration.to_dict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.tasks.landmarks.table import LandmarkError

#: Entry of ``best.pt`` that holds :meth:`Configuration.to_dict`.
CHECKPOINT_KEY = "landmark_configuration"


@dataclasses.dataclass(frozen=True)
class Configuration:
    """Mean pairwise offsets of ``L`` landmarks and their spreads (mm).

    Attributes:
        names: the landmarks, in network output order.
        offsets: ``(L, L, dim)`` mm, ``offsets[i, j]`` the mean of ``p_j - p_i``.
        spread: ``(L, L)`` mm, symmetric, ``>= min_spread_mm`` (diagonal unused).
        expected_spread: ``(L,)`` mm, spread of each landmark around :meth:`expected`.
        cases: number of training cases it was learned from.
    """

    names: tuple[str, ...]
    offsets: np.ndarray
    spread: np.ndarray
    expected_spread: np.ndarray
    cases: int

    def pair_cost(self, i: int, j: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``|b - a - offsets[i, j]|^2 / (2 spread[i, j]^2)`` for candidates ``a (Ka, dim)`` of
        landmark ``i`` and ``b (Kb, dim)`` of landmark ``j`` (mm): a ``(Ka, Kb)`` array."""
        residual = b[None, :, :] - a[:, None, :] - self.offsets[i, j][None, None, :]
        return (residual**2).sum(-1) / (2.0 * self.spread[i, j] ** 2)

    def expected(self, points: np.ndarray, use: np.ndarray | None = None) -> np.ndarray:
        """Position ``(L, dim)`` mm of every landmark expected from the others' ``points (L, dim)``:
        the inverse-variance weighted mean of ``p_j - offsets[i, j]`` over ``j != i`` (only
        the ``j`` where the boolean ``use (L,)`` is true; NaN where no other is left)."""
        points = np.asarray(points, dtype=np.float64)
        count = len(self.names)
        use = np.ones(count, dtype=bool) if use is None else np.asarray(use, dtype=bool)
        out = np.full_like(points, np.nan)
        for i in range(count):
            others = [j for j in range(count) if j != i and use[j]]
            if not others:
                continue
            weights = 1.0 / self.spread[i, others] ** 2
            guesses = points[others] - self.offsets[i, others]
            out[i] = (weights[:, None] * guesses).sum(0) / weights.sum()
        return out

    def distances(self, points: np.ndarray, outlier: float = 3.0) -> np.ndarray:
        """Distance ``(L,)`` mm of every landmark of ``points (L, dim)`` from the position the
        others expect, one wrong landmark not moving the others' expectation: while some
        landmark is more than ``outlier`` of its :attr:`expected_spread` away, the farthest
        (in spreads) stops counting as one of the others (at least two are kept)."""
        use = np.ones(len(self.names), dtype=bool)
        while True:
            distance = np.linalg.norm(points - self.expected(points, use), axis=1)
            z = np.where(use, distance / self.expected_spread, -np.inf)
            if use.sum() <= 2 or not np.nanmax(z) > outlier:
                return distance
            use[int(np.nanargmax(z))] = False

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (what a ``weights_only`` checkpoint may hold)."""
        return {
            "names": list(self.names),
            "offsets": self.offsets.tolist(),
            "spread": self.spread.tolist(),
            "expected_spread": self.expected_spread.tolist(),
            "cases": int(self.cases),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Configuration:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(data["names"]),
            np.asarray(data["offsets"], dtype=np.float64),
            np.asarray(data["spread"], dtype=np.float64),
            np.asarray(data["expected_spread"], dtype=np.float64),
            int(data["cases"]),
        )


def learn_configuration(points: Sequence[np.ndarray], names: Sequence[str], min_spread_mm: float) -> Configuration:
    """The configuration of the training cases' landmarks.

    Args:
        points: one ``(L, dim)`` array of world points (mm) per training case, rows in
            the order of ``names``.
        min_spread_mm: floor of every spread (mm, > 0).
    Raises:
        LandmarkError: no case, or cases with other numbers of landmarks than ``names``.
    """
    names = tuple(names)
    stack = np.asarray([np.asarray(p, dtype=np.float64) for p in points])
    if stack.ndim != 3 or len(stack) == 0 or stack.shape[1] != len(names):
        raise LandmarkError(
            f"learning the landmark configuration needs at least one training case with every landmark of {list(names)}; got points of shape {stack.shape}"
        )
    pairs = stack[:, None, :, :] - stack[:, :, None, :]  # (N, L, L, dim): p_j - p_i at [n, i, j]
    offsets = pairs.mean(0)
    spread = np.sqrt(((pairs - offsets) ** 2).sum(-1).mean(0))
    spread = np.maximum(spread, min_spread_mm)
    partial = Configuration(names, offsets, spread, np.full(len(names), min_spread_mm), len(stack))
    residuals = np.array([np.linalg.norm(case - partial.expected(case), axis=1) for case in stack])  # (N, L)
    expected_spread = np.sqrt((np.nan_to_num(residuals, nan=0.0) ** 2).mean(0))
    return dataclasses.replace(partial, expected_spread=np.maximum(expected_spread, min_spread_mm))


def stored_configuration(state: Mapping[str, Any], names: Sequence[str], path: str = "the checkpoint") -> Configuration | None:
    """The configuration a checkpoint's ``state`` holds; ``None`` for a checkpoint without one
    (trained before configurations were stored: prediction falls back to each channel's maximum).

    Raises:
        LandmarkError: it is of other landmarks than ``names``.
    """
    data = state.get(CHECKPOINT_KEY)
    if not isinstance(data, Mapping):
        return None
    configuration = Configuration.from_dict(data)
    if list(configuration.names) != list(names):
        raise LandmarkError(f"{path}: its landmark configuration is of {list(configuration.names)}, but the network predicts {list(names)}")
    return configuration
