"""Overlays of the worst cases: image, reference and predicted contours on chosen slices.

For each case the figure shows the class with the lowest Dice (the *focus* class) on two
kinds of slice: through the centre of the structure, and where the reference and the
prediction of that class disagree most. 3D images are first put in LPS orientation (as
DICOM viewers show them), so the three columns are axial, coronal and sagittal views with
the voxel spacing as aspect ratio; a 2D image is shown as it is.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from pipeline.errors import SettingError
from pipeline.io.images import read_sitk
from pipeline.reporting.figures import plain, plt, to_data_uri

log = logging.getLogger(__name__)

REFERENCE_COLOUR = "#00d0ff"  # cyan, solid lines
PREDICTION_COLOUR = "#ff3090"  # magenta, dashed lines
#: views of an LPS-oriented (z, y, x) array: name, sliced axis, whether rows go up
VIEWS_3D = (("axial", 0, False), ("coronal", 1, True), ("sagittal", 2, True))


@dataclasses.dataclass(frozen=True)
class CaseFiles:
    """The files of one case that an overlay needs (first image channel only)."""

    case: str
    image: str
    reference: str
    prediction: str


@dataclasses.dataclass
class CaseOverlay:
    """One case of the gallery: why it was chosen and its figure (a PNG data URI)."""

    case: str
    focus_class: str
    dice: float
    figure: str | None
    note: str = ""


def read_display_array(path: str | os.PathLike[str], case: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """An image as a numpy array for display, with its spacing in numpy axis order (mm).

    3D images are reoriented to LPS, so axis 0 runs inferior to superior, axis 1 anterior to
    posterior and axis 2 right to left. Multi-component pixels are averaged.
    """
    image = read_sitk(path, case)
    if image.GetDimension() == 3:
        image = sitk.DICOMOrient(image, "LPS")
    array = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = array.mean(axis=-1)
    return array, tuple(reversed(image.GetSpacing()))


def focus_slices(reference: np.ndarray, prediction: np.ndarray) -> dict[str, tuple[int, ...]]:
    """Per axis, the slice through the structure's centre and the slice with the most errors.

    ``reference`` and ``prediction`` are boolean masks of one class. The centre is the centroid
    of the reference (of the prediction when the reference is empty, of the image when both
    are); the error slice holds the most voxels where the two disagree (the centre if none).
    Returns ``{"centre": (i0, i1, ...), "error": (j0, j1, ...)}``, one index per array axis.
    """
    structure = reference if reference.any() else prediction
    if structure.any():
        centre = tuple(int(round(float(c.mean()))) for c in np.nonzero(structure))
    else:
        centre = tuple(s // 2 for s in reference.shape)
    error = reference != prediction
    worst = []
    for axis in range(error.ndim):
        per_slice = error.sum(axis=tuple(a for a in range(error.ndim) if a != axis))
        worst.append(int(np.argmax(per_slice)) if per_slice.any() else centre[axis])
    return {"centre": centre, "error": tuple(worst)}


def _window(image: np.ndarray) -> tuple[float, float]:
    """Display range: 1st to 99th percentile of the finite intensities."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return float(low), float(high if high > low else low + 1)


def _draw(
    ax: plt.Axes,
    image: np.ndarray,
    reference: np.ndarray,
    prediction: np.ndarray,
    labels: Sequence[int],
    aspect: float,
    flip: bool,
    window: tuple[float, float],
) -> None:
    """One panel: grey image with the contours of every class, reference and prediction."""
    if flip:
        image, reference, prediction = image[::-1], reference[::-1], prediction[::-1]
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="nearest")
    for label in labels:
        for mask, colour, style in ((reference, REFERENCE_COLOUR, "solid"), (prediction, PREDICTION_COLOUR, "dashed")):
            m = (mask == label).astype(np.float32)
            if m.any() and not m.all():
                ax.contour(m, levels=[0.5], colors=colour, linewidths=1.0, linestyles=style)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_figure(
    image: np.ndarray, reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], labels: Sequence[int], focus_label: int, title: str
) -> str:
    """Rows: centre slice and largest-error slice of ``focus_label``; columns: the views.

    Arrays are in numpy order (3D: LPS-oriented ``(z, y, x)``); ``spacing`` in the same order
    sets the aspect ratio. 2D images give one panel per row.
    """
    slices = focus_slices(reference == focus_label, prediction == focus_label)
    window = _window(image)
    if image.ndim == 2:
        fig, axes = plt.subplots(1, 1, figsize=(4.2, 4.4), squeeze=False)
        _draw(axes[0][0], image, reference, prediction, labels, spacing[0] / spacing[1], False, window)
        axes[0][0].set_title("image", fontsize=9)
    else:
        fig, axes = plt.subplots(2, 3, figsize=(10.5, 7.4), squeeze=False)
        for row, kind in enumerate(("centre", "error")):
            for col, (view, axis, flip) in enumerate(VIEWS_3D):
                index = slices[kind][axis]
                rows_axis, cols_axis = (a for a in range(3) if a != axis)
                panels = [np.take(a, index, axis=axis) for a in (image, reference, prediction)]
                _draw(axes[row][col], *panels, labels, spacing[rows_axis] / spacing[cols_axis], flip, window)
                what = "structure centre" if kind == "centre" else "largest error"
                axes[row][col].set_title(f"{view} {index + 1}/{image.shape[axis]} ({what})", fontsize=9)
    handles = [
        plt.Line2D([], [], color=REFERENCE_COLOUR, linestyle="solid", label="reference"),
        plt.Line2D([], [], color=PREDICTION_COLOUR, linestyle="dashed", label="prediction"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=9)
    fig.suptitle(plain(title), fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return to_data_uri(fig)


def worst_cases(per_case: pd.DataFrame, k: int) -> list[tuple[str, str, int, float]]:
    """The ``k`` cases with the lowest mean Dice over classes, worst first.

    Returns ``(case, focus class, focus label, its Dice)`` where the focus class is the
    case's class with the lowest Dice (NaN Dice, i.e. both masks empty, is skipped unless
    every class is NaN). Cases whose every Dice is NaN come first.
    """
    if k <= 0 or per_case.empty:
        return []
    order = per_case.groupby("case", sort=False)["dice"].mean().sort_values(na_position="first", kind="stable").index[:k]
    chosen = []
    for case in order:
        rows = per_case[per_case["case"] == case].sort_values("dice", na_position="last", kind="stable")
        first = rows.iloc[0]
        chosen.append((str(case), str(first["class"]), int(first["label"]), float(first["dice"])))
    return chosen


def case_overlay(files: CaseFiles, focus_class: str, focus_label: int, dice: float, labels: Sequence[int]) -> CaseOverlay:
    """Read the case's image, reference and prediction and draw its overlay figure.

    Raises:
        CaseError: a file is missing or unreadable.
        ValueError: the three files do not have the same shape.
    """
    image, spacing = read_display_array(files.image, files.case)
    reference, _ = read_display_array(files.reference, files.case)
    prediction, _ = read_display_array(files.prediction, files.case)
    shapes = {"image": image.shape, "reference": reference.shape, "prediction": prediction.shape}
    if len(set(shapes.values())) != 1:
        raise SettingError(f"case {files.case!r}: image {files.image}, reference {files.reference} and prediction {files.prediction} differ in shape: {shapes}")
    if image.ndim == 3 and 1 in image.shape:  # a 2D image stored as a one-slice volume
        keep = [a for a in range(3) if image.shape[a] != 1]
        image, reference, prediction = (a.reshape([a.shape[i] for i in keep]) for a in (image, reference, prediction))
        spacing = tuple(spacing[i] for i in keep)
    dice_text = "NaN" if math.isnan(dice) else f"{dice:.3f}"
    title = f"{files.case}: {focus_class} (Dice {dice_text}); contours of every class"
    figure = overlay_figure(
        image.astype(np.float32), np.rint(reference).astype(np.int64), np.rint(prediction).astype(np.int64), spacing, labels, focus_label, title
    )
    return CaseOverlay(files.case, focus_class, dice, figure)


def gallery(per_case: pd.DataFrame, files: Mapping[str, CaseFiles], k: int) -> list[CaseOverlay]:
    """Overlays of the ``k`` worst cases of ``per_case``; ``files`` maps case id to its files.

    A worst case without files gets an entry with a note instead of a figure, so the report
    says what is missing rather than silently showing fewer cases.
    """
    labels = sorted(int(v) for v in per_case["label"].unique()) if not per_case.empty else []
    overlays = []
    for case, focus_class, focus_label, dice in worst_cases(per_case, k):
        if case not in files:
            overlays.append(CaseOverlay(case, focus_class, dice, None, "no image, reference or prediction was given for this case"))
            continue
        overlays.append(case_overlay(files[case], focus_class, focus_label, dice, labels))
        log.info("overlay of case %s (%s)", case, focus_class)
    return overlays
