"""Shared fixtures for the evaluation tests: tiny seeded label maps."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # allows `pytest tests/evaluation` without installing the package
    sys.path.insert(0, str(REPO_ROOT))


def random_label_map(shape: tuple[int, ...], n_labels: int, seed: int, smooth: float = 1.5) -> np.ndarray:
    """Blobby random label map with values 0..n_labels-1 (uint8), from smoothed noise."""
    rng = np.random.default_rng(seed)
    fields = np.stack([ndi.gaussian_filter(rng.standard_normal(shape), smooth) for _ in range(n_labels)])
    fields[0] += 0.05  # a bit more background
    return fields.argmax(axis=0).astype(np.uint8)


def perturbed(labels: np.ndarray, n_labels: int, seed: int, fraction: float = 0.05) -> np.ndarray:
    """Copy of ``labels`` with a random fraction of voxels relabelled (islands and ragged borders)."""
    rng = np.random.default_rng(seed)
    out = labels.copy()
    flip = rng.random(labels.shape) < fraction
    out[flip] = rng.integers(0, n_labels, size=int(flip.sum()))
    return out


@pytest.fixture
def make_label_map():
    """The ``random_label_map`` function, for tests (test modules cannot import conftest)."""
    return random_label_map


@pytest.fixture
def make_perturbed():
    """The ``perturbed`` function."""
    return perturbed
