"""The brain demo: pseudo-subjects of the MNI ICBM152 2009a template shipped with nilearn.

Every case is the *same* template anatomy, varied: a seeded random affine plus a smooth
B-spline deformation moves the T1 image and the gray/white-matter probability maps
together; the label is the argmax of (background, gray matter, white matter)
probabilities; the image gets a smooth multiplicative bias field, a gamma contrast change
and Gaussian noise, and everything is resampled to an isotropic grid (2 mm by default).
It is a realistic but easy dataset: one template's anatomy, varied, not a cohort.

With ``vary`` (``demo.vary_acquisition``, for the training cases) a case also looks like it
came from another scanner or preprocessing tool (:func:`acquisition`): some are
skull-stripped with exact zeros outside the brain, they come as uint8, int16 or float32 with
different intensity ranges, and at voxel sizes of 0.75 and 1.25 times ``spacing_mm``
besides ``spacing_mm`` itself (half of them, so the median spacing stays ``spacing_mm``).
The anatomy of a case is the same with and without ``vary``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.demo.files import wheel_file
from pipeline.errors import SettingError
from pipeline.io.images import Geometry, write_image

TEMPLATE = "mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
LABELS = {0: "background", 1: "gray_matter", 2: "white_matter"}
CHANNEL = "t1"


def template_path(kind: str) -> Path:
    """Path of a template file (``kind``: t1, gm or wm) inside the installed nilearn wheel.

    Raises:
        FileNotFoundError: nilearn is not installed or does not ship the file.
    """
    return wheel_file("nilearn", f"nilearn/datasets/data/{TEMPLATE.format(kind=kind)}", "the brain demo")


def case_ids(n_cases: int, n_test: int) -> dict[str, str]:
    """``{case id: split}`` of the demo: the last ``n_test`` cases are held-out test cases."""
    if not 1 <= n_test < n_cases:
        raise SettingError(f"demo.test_cases must be between 1 and cases - 1 = {n_cases - 1}, got {n_test}")
    return {f"brain_{i:03d}": ("test" if i >= n_cases - n_test else "train") for i in range(n_cases)}


def _output_grid(template: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty image covering the template's extent at ``spacing_mm``."""
    size = [int(round(s * sp / spacing_mm)) for s, sp in zip(template.GetSize(), template.GetSpacing())]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing([spacing_mm] * 3)
    ref.SetDirection(template.GetDirection())
    # Keep the physical centre: shift the origin by half the change of voxel size.
    shift = (spacing_mm - np.array(template.GetSpacing())) / 2.0
    direction = np.array(template.GetDirection()).reshape(3, 3)
    ref.SetOrigin(tuple(np.array(template.GetOrigin()) + direction @ shift))
    return ref


def _random_transform(template: sitk.Image, rng: np.random.Generator) -> sitk.Transform:
    """A seeded affine (rotation, scaling, translation) followed by a smooth B-spline warp."""
    centre = template.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in template.GetSize()])
    affine = sitk.AffineTransform(3)
    angles = np.deg2rad(rng.uniform(-5, 5, size=3))
    euler = sitk.Euler3DTransform(centre, *angles.tolist(), tuple(rng.uniform(-3, 3, size=3)))
    scale = np.diag(rng.uniform(0.94, 1.06, size=3))
    matrix = np.array(euler.GetMatrix()).reshape(3, 3) @ scale
    affine.SetCenter(centre)
    affine.SetMatrix(matrix.ravel().tolist())
    affine.SetTranslation(euler.GetTranslation())
    bspline = sitk.BSplineTransformInitializer(template, [4, 4, 4], order=3)
    params = rng.normal(0.0, 2.5, size=len(bspline.GetParameters()))
    bspline.SetParameters(params.tolist())
    return sitk.CompositeTransform([affine, bspline])


def case_transform(index: int, seed: int = 0) -> sitk.Transform:
    """The transform :func:`make_case` uses for case ``index``: case (output-grid) points ->
    template points, in mm (ITK/LPS), as ``sitk.Resample`` uses it (same seeded draws)."""
    rng = np.random.default_rng([seed, index])
    return _random_transform(sitk.ReadImage(str(template_path("t1"))), rng)


def _bias_field(shape: tuple[int, ...], rng: np.random.Generator, strength: float = 0.15) -> np.ndarray:
    """A smooth multiplicative field around 1: exp of a random low-order polynomial."""
    grids = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    field = np.zeros(shape, dtype=np.float32)
    for g in grids:
        field += rng.uniform(-1, 1) * g + rng.uniform(-0.5, 0.5) * g * g
    field *= strength / max(float(np.abs(field).max()), 1e-6)
    return np.exp(field)


@dataclass(frozen=True)
class Acquisition:
    """How a varied case is acquired: voxel size (mm), background (``noisy`` or ``zero``
    outside the brain), stored dtype and the intensity the image maximum is scaled to."""

    spacing_mm: float
    background: str
    dtype: str
    top: float


#: Voxel size factors of varied cases, by case index modulo 4 (half stay at the demo spacing).
SPACING_FACTORS = (1.0, 0.75, 1.0, 1.25)
#: Stored dtypes of varied cases, by (case index // 3) modulo 3, with the range of their maximum.
DTYPE_RANGES = (("float32", (0.5, 500.0)), ("uint8", (100.0, 255.0)), ("int16", (500.0, 4000.0)))


def acquisition(index: int, seed: int = 0, spacing_mm: float = 2.0) -> Acquisition:
    """The acquisition of varied case ``index``: every third case (1, 4, 7, ...) skull-stripped
    with exact zeros outside the brain, the others with a noisy background; voxel size from
    :data:`SPACING_FACTORS`; dtype from :data:`DTYPE_RANGES` with a seeded maximum (log-uniform)."""
    rng = np.random.default_rng([seed, index, 7])
    dtype, (low, high) = DTYPE_RANGES[(index // 3) % len(DTYPE_RANGES)]
    top = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    background = "zero" if index % 3 == 1 else "noisy"
    return Acquisition(spacing_mm * SPACING_FACTORS[index % len(SPACING_FACTORS)], background, dtype, top)


def stored_intensities(image: np.ndarray, brain: np.ndarray | None, acq: Acquisition) -> np.ndarray:
    """``image`` (float, >= 0) as the acquisition stores it: zeros outside ``brain`` (a boolean
    mask, for a ``zero`` background), the maximum scaled to ``acq.top``, cast to ``acq.dtype``."""
    if acq.background == "zero" and brain is not None:
        image = np.where(brain, image, 0.0)
    image = image * (acq.top / max(float(image.max()), 1e-6))
    if acq.dtype == "float32":
        return image.astype(np.float32)
    info = np.iinfo(acq.dtype)
    return np.clip(np.round(image), info.min, info.max).astype(acq.dtype)


def make_case(
    index: int,
    image_path: str | os.PathLike[str],
    label_path: str | os.PathLike[str],
    seed: int = 0,
    spacing_mm: float = 2.0,
    vary: bool = False,
) -> None:
    """Generate pseudo-subject ``index`` and write its T1 image and label as NIfTI.

    Image: float32, arbitrary units (0..~255); label: uint8 with the values of :data:`LABELS`.
    Both share the same 3D grid (isotropic ``spacing_mm``, template orientation). With
    ``vary`` the case is acquired as :func:`acquisition` says (grid, background, dtype, range).
    """
    rng = np.random.default_rng([seed, index])
    acq = acquisition(index, seed, spacing_mm) if vary else None
    t1, gm, wm = (sitk.Cast(sitk.ReadImage(str(template_path(k))), sitk.sitkFloat32) for k in ("t1", "gm", "wm"))
    grid = _output_grid(t1, acq.spacing_mm if acq else spacing_mm)
    transform = _random_transform(t1, rng)
    sigma = 0.4 * (acq.spacing_mm if acq else spacing_mm)  # anti-aliasing before downsampling

    def warp(image: sitk.Image, interpolator: int) -> np.ndarray:
        smooth = sitk.SmoothingRecursiveGaussian(image, sigma)
        out = sitk.Resample(smooth, grid, transform, interpolator, 0.0, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(out)

    image = warp(t1, sitk.sitkBSpline)
    p_gm, p_wm = warp(gm, sitk.sitkLinear) / 255.0, warp(wm, sitk.sitkLinear) / 255.0
    p_bg = 1.0 - p_gm - p_wm
    label = np.argmax(np.stack([p_bg, p_gm, p_wm]), axis=0).astype(np.uint8)

    image = np.clip(image, 0, None) * _bias_field(image.shape, rng)
    top = float(np.percentile(image, 99.9)) or 1.0
    gamma = rng.uniform(0.8, 1.25)
    image = top * (np.clip(image / top, 0, None) ** gamma)
    image += rng.normal(0.0, rng.uniform(0.01, 0.03) * top, size=image.shape).astype(np.float32)
    image = np.clip(image, 0, None).astype(np.float32)
    if acq is not None:
        brain = warp(sitk.Cast(t1 > 0, sitk.sitkFloat32), sitk.sitkLinear) > 0.5 if acq.background == "zero" else None
        image = stored_intensities(image, brain, acq)

    geometry = Geometry.of(grid)
    write_image(image, geometry, image_path)
    write_image(label, geometry, label_path)
