"""Resampling speed and quality: this pipeline (SimpleITK) against the nnU-Net approach.

A CT-like volume of 512 x 512 x 200 voxels at (0.8, 0.8, 2.5) mm with a 4-class label is
resampled to 1.5 mm isotropic and back:

- ours: ``pipeline.preprocessing.resample`` with each ``preprocessing.image_interpolation``
  (linear, bspline) and ``coarse_axis_interpolation`` (nearest, linear, joint = null)
  setting, labels one-hot linear, as ``preprocess_case`` calls it (the separable numpy
  resampler), and the same through SimpleITK's ``Resample`` (``method="simpleitk"``);
- nnU-Net: scikit-image ``resize`` with order 3 slice by slice in-plane and the coarse
  axis separately with order 0 (``map_coordinates``), labels one-hot per class with order 1
  (nnU-Net v2's ``resample_data_or_seg``, re-implemented here; scikit-image is needed only
  for this script: ``pip install scikit-image``).

Quality is the error of a down-and-up round trip with the same method: image RMSE (HU and
relative to the original's standard deviation inside the body), label Dice per class.
Times are the median of ``--repeats`` runs. Finally the peak memory of a whole
``preprocess_case`` of the volume, run in a subprocess (its ``VmHWM``, the peak resident
size; ``ru_maxrss`` would include this parent's size, which it inherits). Prints a table; not a test.

    .venv/bin/python workflow/benchmarks/bench_resampling.py [--size 512 512 200] [--repeats 3]

Our resampler's matrix products run in BLAS, which uses every core unless told otherwise;
scikit-image uses one. For a like-for-like ratio, and the speed a pipeline job with
``threads: 1`` gets (Snakemake sets these variables for each job), run it with
``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.io.images import Geometry  # noqa: E402
from pipeline.preprocessing.resample import grid_for_spacing, resample_array, resample_label  # noqa: E402

SOURCE_SPACING = (0.8, 0.8, 2.5)  # ITK order (x, y, z)
TARGET_SPACING = (1.5, 1.5, 1.5)
CLASSES = 4


def ct_like(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 CT-like volume (HU) and its uint8 label, numpy order ``(Z, Y, X)``.

    Body ellipse (soft tissue), two lungs (air), a spine (bone), a liver-like organ
    (class 1), two kidneys (class 2) and a tumour in the liver (class 3), with noise and
    a slight blur (partial volume).
    """
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z = (np.arange(nz, dtype=np.float32) * SOURCE_SPACING[2])[:, None, None]
    y = ((np.arange(ny, dtype=np.float32) - ny / 2) * SOURCE_SPACING[1])[None, :, None]
    x = ((np.arange(nx, dtype=np.float32) - nx / 2) * SOURCE_SPACING[0])[None, None, :]
    zc = nz * SOURCE_SPACING[2] / 2

    def ellipsoid(cx, cy, cz, rx, ry, rz):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1.0

    image = np.full(shape, -1000.0, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    body = ((x / 170) ** 2 + (y / 120) ** 2 <= 1.0) & (z >= 0)
    image[np.broadcast_to(body, shape)] = 40.0
    image[ellipsoid(-75, -10, zc + 60, 55, 70, 120)] = -820.0
    image[ellipsoid(75, -10, zc + 60, 55, 70, 120)] = -820.0
    spine = ((x / 18) ** 2 + ((y - 80) / 18) ** 2 <= 1.0) & (z >= 0)
    image[np.broadcast_to(spine, shape)] = 700.0
    liver = ellipsoid(-60, 10, zc - 60, 80, 60, 90)
    image[liver], label[liver] = 60.0, 1
    for cx in (-70, 70):
        kidney = ellipsoid(cx, 60, zc - 100, 25, 35, 50)
        image[kidney], label[kidney] = 150.0, 2
    tumour = ellipsoid(-50, 0, zc - 50, 18, 18, 18)
    image[tumour], label[tumour] = 100.0, 3
    blurred = sitk.SmoothingRecursiveGaussian(_image(image, SOURCE_SPACING), 0.7)
    image = sitk.GetArrayFromImage(blurred)
    image += rng.normal(0.0, 12.0, size=shape).astype(np.float32)
    return image, label


def _image(array, spacing):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


# --- the nnU-Net approach (after nnunetv2.preprocessing.resampling.default_resampling) ---


def _nnunet_shape(shape, source, target):
    return tuple(int(round(n * s / t)) for n, s, t in zip(shape, source, target))


def nnunet_resample(array: np.ndarray, new_shape: tuple[int, ...], is_seg: bool) -> np.ndarray:
    """nnU-Net's separate-z resampling of one channel; axis 0 is the coarse axis."""
    from scipy.ndimage import map_coordinates
    from skimage.transform import resize

    def resize_2d(plane, shape):
        if not is_seg:
            return resize(plane, shape, order=3, mode="edge", anti_aliasing=False)
        out = np.zeros(shape, dtype=plane.dtype)
        for c in np.unique(plane):
            mask = resize((plane == c).astype(float), shape, order=1, mode="edge", clip=True, anti_aliasing=False)
            out[mask >= 0.5] = c
        return out

    inplane = np.zeros((array.shape[0], *new_shape[1:]), dtype=array.dtype if is_seg else np.float32)
    for k in range(array.shape[0]):
        inplane[k] = resize_2d(array[k].astype(float) if not is_seg else array[k], new_shape[1:])
    if array.shape[0] == new_shape[0]:
        return inplane
    rows, cols, dims = new_shape
    grid = np.mgrid[:rows, :cols, :dims].astype(np.float32)
    scale = np.array([inplane.shape[i] / new_shape[i] for i in range(3)], dtype=np.float32)
    coords = scale[:, None, None, None] * (grid + 0.5) - 0.5
    return map_coordinates(inplane, coords, order=0, mode="nearest")


# --- measurements ---


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def dice(a: np.ndarray, b: np.ndarray, k: int) -> float:
    x, y = a == k, b == k
    total = x.sum() + y.sum()
    return float(2 * np.logical_and(x, y).sum() / total) if total else float("nan")


def image_error(back: np.ndarray, image: np.ndarray, body: np.ndarray) -> tuple[float, float]:
    rmse = float(np.sqrt(np.mean((back[body] - image[body]) ** 2)))
    return rmse, rmse / float(image[body].std())


def peak_memory_of_preprocess(image: np.ndarray, label: np.ndarray, interpolation: str, coarse: str | None = "nearest", code_dir: str | None = None) -> float:
    """Peak resident memory (MB) of a subprocess that runs preprocess_case on the volume (NIfTI files).

    ``code_dir``: the repository folder whose ``pipeline`` package runs (default: this one),
    e.g. an older version extracted with ``git archive <commit> pipeline | tar -x -C DIR``.
    """
    from pipeline.io.images import write_image

    with tempfile.TemporaryDirectory() as tmp:
        geometry = Geometry(size=image.shape[::-1], spacing=SOURCE_SPACING, origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
        write_image(image.astype(np.int16), geometry, Path(tmp) / "ct.nii.gz")
        write_image(label, geometry, Path(tmp) / "label.nii.gz")
        code = f"""
import resource, sys
sys.path.insert(0, {code_dir or str(Path(__file__).resolve().parents[2])!r})
from pipeline.preprocessing.preprocess import preprocess_case
plan = {{"dimensions": 3, "channels": ["ct"], "labels": {{str(k): str(k) for k in range({CLASSES})}},
        "target_spacing": {list(TARGET_SPACING)}, "normalisation": {{"ct": {{"scheme": "ct", "clip": [-1000, 1000], "mean": 0.0, "std": 300.0}}}},
        "preprocessing": {{"crop_to_nonzero": True, "image_interpolation": {interpolation!r}, "label_interpolation": "linear_onehot", "coarse_axis_interpolation": {coarse!r},
                          "label_coarse_axis_interpolation": "linear"}}}}
preprocess_case("ct", [{str(Path(tmp) / "ct.nii.gz")!r}], {str(Path(tmp) / "label.nii.gz")!r}, plan, {str(Path(tmp) / "out")!r})
# ru_maxrss survives exec, so a child of this (large) process would report at least the
# parent's size; VmHWM is the peak of the child's own address space.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
print(int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=3, default=[512, 512, 200], metavar=("X", "Y", "Z"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-nnunet", action="store_true")
    parser.add_argument("--compare-code", metavar="DIR", help="also measure the peak memory of preprocess_case with the pipeline package in DIR")
    args = parser.parse_args()
    shape = (args.size[2], args.size[1], args.size[0])
    image, label = ct_like(shape)
    body = image > -500
    source = Geometry(size=tuple(args.size), spacing=SOURCE_SPACING, origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
    target = grid_for_spacing(source, TARGET_SPACING)
    print(f"volume {args.size} voxels at {SOURCE_SPACING} mm -> {list(target.size)} at {TARGET_SPACING} mm; {CLASSES}-class label; median of {args.repeats}")
    rows = []

    variants = [(m, n, c) for c in ("nearest", "linear", None) for n in ("linear", "bspline") for m in ("auto",)]
    variants += [("simpleitk", n, "nearest") for n in ("linear", "bspline")]
    for method, name, coarse in variants:
        kwargs = {"coarse": coarse, "method": method}
        t_img, down = median_time(lambda: resample_array(image, source, target, name, **kwargs), args.repeats)
        t_lab, down_label = median_time(lambda: resample_label(label, source, target, "linear_onehot", CLASSES, **kwargs), args.repeats)
        back = resample_array(down, target, source, name, **kwargs)
        back_label = resample_label(down_label, target, source, "linear_onehot", CLASSES, **kwargs)
        label_name = f"ours{' (SimpleITK)' if method == 'simpleitk' else ''} {name}, coarse {coarse or 'joint'}"
        rows.append((label_name, t_img, t_lab, *image_error(back, image, body), [dice(back_label, label, k) for k in range(1, CLASSES)]))

    # The configured default: the image's coarse axis nearest (as nnU-Net), labels' linear.
    by_name = {row[0]: row for row in rows}
    img, lab = by_name["ours bspline, coarse nearest"], by_name["ours bspline, coarse linear"]
    rows.append(("ours default (bspline; label coarse lin.)", img[1], lab[2], img[3], img[4], lab[5]))

    if not args.skip_nnunet:
        new_shape = _nnunet_shape(shape, SOURCE_SPACING[::-1], TARGET_SPACING[::-1])
        t_img, down = median_time(lambda: nnunet_resample(image, new_shape, False), args.repeats)
        t_lab, down_label = median_time(lambda: nnunet_resample(label, new_shape, True), args.repeats)
        back = nnunet_resample(down, shape, False)
        back_label = nnunet_resample(down_label, shape, True)
        rows.append(
            ("nnU-Net (skimage order 3 + z order 0)", t_img, t_lab, *image_error(back, image, body), [dice(back_label, label, k) for k in range(1, CLASSES)])
        )

    print(f"{'method':40s} {'image s':>8s} {'label s':>8s} {'total s':>8s} {'RMSE HU':>8s} {'rel.':>6s}  Dice after round trip (classes 1..{CLASSES - 1})")
    for name, t_img, t_lab, rmse, rel, dices in rows:
        print(f"{name:40s} {t_img:8.2f} {t_lab:8.2f} {t_img + t_lab:8.2f} {rmse:8.2f} {rel:6.3f}  {' '.join(f'{d:.4f}' for d in dices)}")
    if not args.skip_nnunet:
        reference = rows[-1][1] + rows[-1][2]
        for name, t_img, t_lab, *_ in rows[:-1]:
            print(f"speed-up of {name} over nnU-Net: {reference / (t_img + t_lab):.1f}x")
        # Paired: nnU-Net and the default back to back, so both see the same machine load.
        ratios = []
        for _ in range(args.repeats):
            tic = time.perf_counter()
            nnunet_resample(image, new_shape, False), nnunet_resample(label, new_shape, True)
            t_nn = time.perf_counter() - tic
            tic = time.perf_counter()
            resample_array(image, source, target, "bspline", coarse="nearest"), resample_label(label, source, target, "linear_onehot", CLASSES, coarse="linear")
            ratios.append(t_nn / (time.perf_counter() - tic))
        print(
            f"paired speed-up of the default over nnU-Net (image + label, median of {args.repeats}): {statistics.median(ratios):.1f}x "
            f"(range {min(ratios):.1f}-{max(ratios):.1f}x)"
        )
    for name in ("linear", "bspline"):
        print(
            f"peak memory of preprocess_case (image_interpolation={name}, coarse axis nearest, label's linear): {peak_memory_of_preprocess(image, label, name):.0f} MB"
        )
        if args.compare_code:
            print(f"  the same with the code in {args.compare_code}: {peak_memory_of_preprocess(image, label, name, None, args.compare_code):.0f} MB")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
