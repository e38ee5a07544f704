"""Landmarks of the brain demo: points found on the MNI template, carried into every
pseudo-subject by the inverse of the case's deformation.

Template landmarks (on the midsagittal plane unless noted; MNI coordinates are RAS, ITK
physical points LPS: ``x_lps = -x_ras``, ``y_lps = -y_ras``):

- ``AC``, ``PC``: anterior / posterior commissure, from MNI ~(0, 2, -4) and ~(0, -24, -2),
  each moved to the centroid of the bright white-matter blob around it in the T1 image;
- ``CC_genu``, ``CC_splenium``: anterior- and posterior-most points of the corpus callosum
  (largest white-matter component of the midsagittal slice);
- ``frontal_horn_L``, ``frontal_horn_R``: anterior tips of the lateral ventricles (internal
  CSF: inside the brain, neither gray nor white matter), left and right.

:func:`pipeline.demo.brain.case_transform` maps case points to template points; a case's
landmark is the case point that maps onto the template landmark, found by Newton's method.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from pipeline.atomic import write_tsv
from pipeline.demo import brain
from pipeline.errors import SettingError
from pipeline.tasks.landmarks.table import points_table

#: Nominal MNI (RAS, mm) positions refined on the template.
MNI_RAS = {"AC": (0.0, 2.0, -4.0), "PC": (0.0, -24.0, -2.0)}
NAMES = ("AC", "PC", "CC_genu", "CC_splenium", "frontal_horn_L", "frontal_horn_R")


def _read(kind: str) -> tuple[np.ndarray, sitk.Image]:
    image = sitk.ReadImage(str(brain.template_path(kind)))
    return sitk.GetArrayFromImage(image).astype(np.float64), image


def _blob_centroid(plane: np.ndarray, centre: tuple[int, int], half: int = 3) -> tuple[float, float]:
    """Centroid of the bright connected blob (>= 90% of the local maximum) near ``centre`` of a 2D slice."""
    lo = [c - half for c in centre]
    window = plane[lo[0] : lo[0] + 2 * half + 1, lo[1] : lo[1] + 2 * half + 1]
    peak = np.unravel_index(int(np.argmax(window)), window.shape)
    components, _ = ndimage.label(window >= 0.9 * window[peak])
    blob = components == components[peak]
    weights = window * blob
    rows, cols = np.indices(window.shape)
    return lo[0] + float((rows * weights).sum() / weights.sum()), lo[1] + float((cols * weights).sum() / weights.sum())


@functools.lru_cache(maxsize=1)
def template_landmarks() -> dict[str, tuple[float, ...]]:
    """``{name: (x, y, z)}`` template landmarks in mm (ITK/LPS), in the order of :data:`NAMES`."""
    t1, image = _read("t1")
    gm, _ = _read("gm")
    wm, _ = _read("wm")
    midline = int(round(image.TransformPhysicalPointToContinuousIndex((0.0, 0.0, 0.0))[0]))
    index: dict[str, tuple[float, float, float]] = {}  # numpy order (z, y, x)
    for name, (x, y, z) in MNI_RAS.items():
        cx, cy, cz = image.TransformPhysicalPointToContinuousIndex((-x, -y, z))
        zz, yy = _blob_centroid(t1[:, :, midline], (int(round(cz)), int(round(cy))))
        index[name] = (zz, yy, float(midline))
    components, n = ndimage.label(wm[:, :, midline] > 127)
    callosum = components == 1 + int(np.argmax(ndimage.sum(np.ones_like(wm[:, :, 0]), components, range(1, n + 1))))
    zz, yy = np.nonzero(callosum)
    # The anterior direction is +y_ras = -y_lps; find which way the y index points.
    anterior = 1 if image.TransformIndexToPhysicalPoint((0, 1, 0))[1] < image.TransformIndexToPhysicalPoint((0, 0, 0))[1] else -1
    front, back = (yy.max(), yy.min()) if anterior == 1 else (yy.min(), yy.max())
    index["CC_genu"] = (float(zz[yy == front].mean()), float(front), float(midline))
    index["CC_splenium"] = (float(zz[yy == back].mean()), float(back), float(midline))
    tissue = (gm + wm) > 127
    inside = ndimage.binary_fill_holes(ndimage.binary_closing(tissue, iterations=3))
    csf, n = ndimage.label(inside & ((gm + wm) < 60))
    sizes = ndimage.sum(np.ones_like(gm), csf, range(1, n + 1))
    for component in 1 + np.argsort(sizes)[::-1][:4]:
        z3, y3, x3 = np.nonzero(csf == component)
        if abs(x3.mean() - midline) < 5:  # third ventricle and the like, not a lateral one
            continue
        side = "L" if image.TransformContinuousIndexToPhysicalPoint((float(x3.mean()), 0.0, 0.0))[0] > 0 else "R"  # LPS: +x is left
        tip = (y3 == y3.max()) if anterior == 1 else (y3 == y3.min())
        index.setdefault(f"frontal_horn_{side}", (float(z3[tip].mean()), float(y3[tip][0]), float(x3[tip].mean())))
    missing = [n for n in NAMES if n not in index]
    if missing:
        raise SettingError(f"could not place demo landmark(s) {missing} on the template {brain.template_path('t1')}")
    return {n: tuple(image.TransformContinuousIndexToPhysicalPoint(index[n][::-1])) for n in NAMES}


def invert_point(transform: sitk.Transform, target: np.ndarray, tolerance_mm: float = 1e-5, max_iterations: int = 50) -> np.ndarray:
    """The point ``p`` with ``transform(p) = target`` (mm), by Newton's method.

    The Jacobian is taken by central differences (step 0.01 mm) of the composite
    transform; the start is ``target`` itself (the demo's deformations are near identity).

    Raises:
        RuntimeError: no convergence to ``tolerance_mm`` within ``max_iterations``.
    """
    target = np.asarray(target, dtype=np.float64)
    point, step = target.copy(), 1e-2
    for _ in range(max_iterations):
        residual = np.asarray(transform.TransformPoint(point.tolist())) - target
        if np.linalg.norm(residual) < tolerance_mm:
            return point
        jacobian = np.empty((3, 3))
        for k in range(3):
            delta = np.zeros(3)
            delta[k] = step
            plus = np.asarray(transform.TransformPoint((point + delta).tolist()))
            minus = np.asarray(transform.TransformPoint((point - delta).tolist()))
            jacobian[:, k] = (plus - minus) / (2 * step)
        point = point - np.linalg.solve(jacobian, residual)
    raise SettingError(f"inverting the demo transform at {target.tolist()} mm did not converge in {max_iterations} iterations")


def case_landmarks(index: int, seed: int = 0) -> np.ndarray:
    """Landmarks ``(L, 3)`` in mm (ITK/LPS) of pseudo-subject ``index``, rows in :data:`NAMES` order."""
    transform = brain.case_transform(index, seed)
    return np.array([invert_point(transform, np.asarray(p)) for p in template_landmarks().values()])


def write_demo_landmarks(config: Mapping[str, Any], output: str | os.PathLike[str]) -> pd.DataFrame:
    """Write the landmark table of every brain demo case (``case, landmark, x, y, z``)."""
    demo, settings = config["dataset"]["demo"], config["demo"]
    if demo != "brain":
        raise SettingError(f"demo landmarks exist for the brain demo only; dataset.demo is {demo!r}")
    cases = brain.case_ids(settings["cases"], settings["test_cases"])
    frames = [points_table(case, NAMES, case_landmarks(int(case.rsplit("_", 1)[1]), settings["seed"])) for case in cases]
    table = pd.concat(frames, ignore_index=True)
    write_tsv(output, table)
    return table
