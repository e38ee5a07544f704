"""Shared fixtures: tiny synthetic images written to temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
#: Job slots (``--cores``) of the tests' real workflow runs on this 2-core machine. Their jobs
#: are tiny and Snakemake adds about half a second between a job's end and the next start
#: (40 empty jobs take 11.7 s on --cores 2, 1.6 s of it CPU), so more slots than cores keeps
#: the suite short. Staying within --cores is tested with --cores 2 (tests/test_scheduling.py,
#: tests/test_stress.py).
WORKFLOW_CORES = "4"


def write_volume(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=None, direction=None) -> Path:
    """Write ``array`` (numpy order) as an image with the given ITK-order geometry."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: array.ndim])
    if origin is not None:
        image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def blob_case(shape=(12, 14, 16), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image with two nested box-shaped classes, and its label (numpy order)."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, dtype=np.uint8)
    label[2:-2, 3:-3, 3:-3] = 1
    label[4:-4, 5:-5, 6:-6] = 2
    image = (label * 50.0 + 20.0 + rng.normal(0, 3, shape)).astype(np.float32)
    return image, label


@pytest.fixture()
def tiny_dataset(tmp_path: Path) -> Path:
    """A manifest with four tiny labelled cases (one test case); returns the manifest path."""
    lines = ["case\timage\tlabel\tsplit"]
    for i in range(4):
        image, label = blob_case(seed=i)
        write_volume(tmp_path / "images" / f"c{i}.nii.gz", image, spacing=(1.0, 1.0, 1.5))
        write_volume(tmp_path / "labels" / f"c{i}.nii.gz", label, spacing=(1.0, 1.0, 1.5))
        lines.append(f"c{i}\timages/c{i}.nii.gz\tlabels/c{i}.nii.gz\t{'test' if i == 3 else 'train'}")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
