"""Shift benchmark: does a trained brain-demo model carry to scans that differ from its training data?

Takes a results folder of a brain-demo run (its ``config.json``, the demo manifest and a trained
``models/<experiment>``), and scores every held-out test case unshifted and after each shift
alone, predicting as ``python -m pipeline predict`` does (``preprocess_case`` with the plan
stored in the checkpoints, then the fold ensemble's ``Predictor``; mirroring only with
``--mirror``, to keep the 8 x cases predictions affordable on a CPU):

- ``zero_background``: exactly 0 outside the brain (the template's brain warped as the case
  was: a skull-stripped scan);
- ``uint8_0_133``: intensities scaled to 0..133 and stored as uint8;
- ``resampled_1mm``: the image resampled to 1 mm voxels (B-spline; the prediction is resampled
  back to the case's grid, nearest, to be scored against its label);
- ``bias_field_strong``: a smooth multiplicative field of up to exp(+-0.4) (the demo's: 0.15);
- ``noise_doubled``: noise added so that its standard deviation doubles (estimated outside
  the brain, where the demo image is noise only);
- ``gamma_0.6``, ``gamma_1.6``: ``top * (x / top) ** gamma`` with ``top`` the 99.9th percentile.

Prints the mean foreground Dice (mean over cases of the mean over gray and white matter)
per shift with its change against the unshifted cases, and the per-class means.

    python workflow/benchmarks/bench_shift.py --results results [--experiment unet_dicece]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from pipeline.demo import brain
from pipeline.inference.ensemble import fold_checkpoints
from pipeline.io.inputs import collect_inputs
from pipeline.preprocessing.preprocess import preprocess_case
from pipeline.tasks.segmentation.new_images import INFERENCE_DEFAULTS, stored_settings
from pipeline.tasks.segmentation.predict import Predictor


def brain_mask(case: str, seed: int, reference: sitk.Image) -> np.ndarray:
    """The template's brain (its nonzero voxels) warped onto ``reference`` as the demo warped the case."""
    t1 = sitk.Cast(sitk.ReadImage(str(brain.template_path("t1"))), sitk.sitkFloat32)
    support = sitk.SmoothingRecursiveGaussian(sitk.Cast(t1 > 0, sitk.sitkFloat32), 0.4 * reference.GetSpacing()[0])
    transform = brain.case_transform(int(case.rsplit("_", 1)[1]), seed)
    return sitk.GetArrayFromImage(sitk.Resample(support, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)) > 0.5


def gamma(x: np.ndarray, g: float) -> np.ndarray:
    top = float(np.percentile(x, 99.9)) or 1.0
    return (top * np.clip(x / top, 0, None) ** g).astype(np.float32)


def shifted_images(x: np.ndarray, inside: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every shift of image ``x`` (numpy order, float32) on its own grid; ``inside``: the brain mask."""
    outside = x[~inside]
    sigma = float(np.sqrt(np.mean(outside[outside > 0] ** 2))) if (outside > 0).any() else 0.0  # clipped N(0, sigma)
    return {
        "unshifted": x,
        "zero_background": np.where(inside, x, 0).astype(np.float32),
        "uint8_0_133": np.round(np.clip(x, 0, None) / float(x.max()) * 133).astype(np.uint8),
        "bias_field_strong": (x * brain._bias_field(x.shape, rng, strength=0.4)).astype(np.float32),
        "noise_doubled": np.clip(x + rng.normal(0, sigma * np.sqrt(3.0), x.shape), 0, None).astype(np.float32),
        "gamma_0.6": gamma(x, 0.6),
        "gamma_1.6": gamma(x, 1.6),
    }


def resampled(image: sitk.Image, spacing: float, interpolator: int, reference: sitk.Image | None = None) -> sitk.Image:
    """``image`` on an isotropic ``spacing`` grid over the same extent (or on ``reference``)."""
    if reference is None:
        size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing())]
        reference = sitk.Image(size, sitk.sitkUInt8)
        reference.SetSpacing([spacing] * image.GetDimension())
        reference.SetDirection(image.GetDirection())
        shift = (spacing - np.array(image.GetSpacing())) / 2.0  # same physical extent
        reference.SetOrigin(tuple(np.array(image.GetOrigin()) + np.array(image.GetDirection()).reshape(3, 3) @ shift))
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0, image.GetPixelID())


def dice(pred: np.ndarray, ref: np.ndarray, k: int) -> float:
    a, b = pred == k, ref == k
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def run(results: Path, experiment: str, work: Path, mirror: bool = False) -> pd.DataFrame:
    config = json.loads((results / "config.json").read_text())
    manifest_path = results / "demo" / "brain" / "manifest.tsv"
    manifest = pd.read_csv(manifest_path, sep="\t")
    test = manifest[manifest["split"] == "test"]
    seed = int(config["demo"]["seed"])
    inputs, outputs = work / "inputs", work / "outputs"
    references, rows = {}, []
    for _, row in test.iterrows():
        image = sitk.ReadImage(str(manifest_path.parent / row[brain.CHANNEL]))
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(manifest_path.parent / row["label"])))
        x = sitk.GetArrayFromImage(image).astype(np.float32)
        inside = brain_mask(row["case"], seed, image)
        rng = np.random.default_rng([seed, int(row["case"].rsplit("_", 1)[1]), 99])
        for name, array in shifted_images(x, inside, rng).items():
            out = sitk.GetImageFromArray(array)
            out.CopyInformation(image)
            (inputs / name).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(out, str(inputs / name / f"{row['case']}.nii.gz"))
        (inputs / "resampled_1mm").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(resampled(image, 1.0, sitk.sitkBSpline), str(inputs / "resampled_1mm" / f"{row['case']}.nii.gz"))
        references[row["case"]] = (image, label)
    checkpoints = fold_checkpoints(results / "models" / experiment, None)
    stored = stored_settings(checkpoints[0])
    predictor = Predictor(checkpoints, {**INFERENCE_DEFAULTS, **stored["experiment"].get("inference", {}), "mirror": mirror})
    for shift in sorted(p.name for p in inputs.iterdir()):
        (outputs / shift).mkdir(parents=True, exist_ok=True)
        for case, files in collect_inputs(inputs / shift, len(stored["plan"]["channels"])).items():
            with tempfile.TemporaryDirectory(prefix=f"shift_{case}_") as tmp:
                preprocess_case(case, [str(f) for f in files], None, predictor.plan, tmp)
                predictor(tmp, outputs / shift / f"{case}.nii.gz")
        for case, (image, label) in references.items():
            pred = sitk.ReadImage(str(outputs / shift / f"{case}.nii.gz"))
            if pred.GetSize() != image.GetSize():
                pred = resampled(pred, 0.0, sitk.sitkNearestNeighbor, reference=image)
            p = sitk.GetArrayFromImage(pred)
            gm, wm = dice(p, label, 1), dice(p, label, 2)
            rows.append({"shift": shift, "case": case, "gray_matter": gm, "white_matter": wm, "mean_foreground": (gm + wm) / 2})
    return pd.DataFrame(rows)


def summary(per_case: pd.DataFrame) -> pd.DataFrame:
    table = per_case.groupby("shift")[["mean_foreground", "gray_matter", "white_matter"]].mean()
    order = ["unshifted", "zero_background", "uint8_0_133", "resampled_1mm", "bias_field_strong", "noise_doubled", "gamma_0.6", "gamma_1.6"]
    table = table.reindex([s for s in order if s in table.index])
    table.insert(1, "change", table["mean_foreground"] - table.loc["unshifted", "mean_foreground"])
    return table.round(4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder of a brain-demo run")
    parser.add_argument("--experiment", default="unet_dicece")
    parser.add_argument("--mirror", action="store_true", help="mirror test-time augmentation (2^3 passes per window)")
    parser.add_argument("--per-case", type=Path, default=None, help="also write the per-case table (TSV) here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_shift_") as tmp:
        per_case = run(args.results, args.experiment, Path(tmp), args.mirror)
    if args.per_case:
        per_case.to_csv(args.per_case, sep="\t", index=False)
    table = summary(per_case)
    print(f"{args.experiment} on {per_case['case'].nunique()} test cases ({args.results}, mirror {args.mirror}): mean foreground Dice per shift")
    print(table.to_string())
    print(f"largest loss: {-table['change'].min():.4f}")


if __name__ == "__main__":
    main()
