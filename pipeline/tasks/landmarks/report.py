"""The landmark experiment's HTML report and the comparison of landmark experiments.

Report (``reports/<experiment>.html``): radial-error summary per landmark (median next to
mean, worst case and success detection rates, so that one jump cannot hide behind a good
median), the flagged landmarks (confidence below ``min_confidence``), a box plot of the
errors, learning curves, overlays of the true (green circle) and predicted (red cross)
points on orthogonal slices of the original image for the worst test cases, the per-case
table and the experiment's settings. Comparison: the ``all`` rows of every experiment side
by side with a paired Wilcoxon test of each experiment's errors against the first one's,
and the same statistics per landmark.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import SimpleITK as sitk

from pipeline.io.images import Geometry
from pipeline.reporting.figures import plain, plt, to_data_uri
from pipeline.reporting.page import Figure, Section, render_experiment_page, render_page, table_of
from pipeline.reporting.results import ExperimentResults
from pipeline.tasks.landmarks.geometry import world_to_index
from pipeline.tasks.landmarks.table import AXES

TRUE_COLOUR, PREDICTED_COLOUR = "#2ca02c", "#d62728"
ZOOM_MM = 30.0


def flagged_rows(per_case: pd.DataFrame) -> pd.DataFrame:
    """The per-case rows whose prediction was flagged (none when the table has no ``flagged``)."""
    if "flagged" not in per_case:
        return per_case.iloc[:0]
    flags = per_case["flagged"].astype(str).str.lower().isin(("true", "1"))
    columns = [c for c in ("case", "landmark", "radial_error_mm", "confidence") if c in per_case]
    return per_case.loc[flags, columns]


def error_boxplot(per_case: pd.DataFrame) -> str:
    """Radial errors per landmark: box plot with every case as a dot, 2 and 4 mm marked."""
    names = list(dict.fromkeys(per_case["landmark"]))
    data = [per_case.loc[per_case["landmark"] == n, "radial_error_mm"].to_numpy() for n in names]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.4))
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=12, alpha=0.7)
    for r in (2.0, 4.0):
        ax.axhline(r, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(1, len(names) + 1), [plain(n) for n in names], rotation=20, fontsize=8)
    ax.set(ylabel="radial error (mm)", title="Radial error per landmark (test cases)")
    ax.grid(alpha=0.3)
    return to_data_uri(fig)


def learning_curves(logs: Mapping[str, pd.DataFrame]) -> str | None:
    """Training loss and validation mean radial error per epoch, one line per fold."""
    if not logs:
        return None
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.4))
    for fold, frame in sorted(logs.items()):
        ax_loss.plot(frame["epoch"], frame["train_loss"], marker=".", label=fold)
        if "val_mre_mm" in frame:
            valid = frame[["epoch", "val_mre_mm"]].dropna()
            ax_val.plot(valid["epoch"], valid["val_mre_mm"], marker="o", label=fold)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss", yscale="log")
    ax_val.set(xlabel="epoch", ylabel="mm", title="Validation mean radial error")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return to_data_uri(fig)


def case_overlay(image_path: str, rows: pd.DataFrame) -> str:
    """Axial, coronal and sagittal slices through each true landmark (one column per landmark),
    zoomed to +-30 mm, with the true and the predicted point projected onto the slice."""
    image = sitk.ReadImage(str(image_path))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    if array.ndim == 4:
        array = array[..., 0]
    geometry = Geometry.of(image)
    axes = [a for a in AXES if f"{a}_true" in rows.columns]
    true = world_to_index(rows[[f"{a}_true" for a in axes]].to_numpy(), geometry)
    pred = world_to_index(rows[[f"{a}_pred" for a in axes]].to_numpy(), geometry)
    low, high = np.percentile(array, [1, 99.5])
    spacing = geometry.spacing_numpy
    views = [(0, "axial"), (1, "coronal"), (2, "sagittal")] if array.ndim == 3 else [(None, "image")]
    fig, grid = plt.subplots(len(views), len(rows), figsize=(2.3 * len(rows), 2.3 * len(views)), squeeze=False)
    for col, (name, t, p, err) in enumerate(zip(rows["landmark"], true, pred, rows["radial_error_mm"])):
        for row, (axis, view) in enumerate(views):
            ax = grid[row][col]
            keep = [a for a in range(array.ndim) if a != axis]
            plane = array if axis is None else np.take(array, int(np.clip(round(t[axis]), 0, array.shape[axis] - 1)), axis=axis)
            ax.imshow(plane, cmap="gray", vmin=low, vmax=high, origin="lower", aspect=spacing[keep[0]] / spacing[keep[1]], interpolation="nearest")
            ax.scatter([t[keep[1]]], [t[keep[0]]], s=80, facecolors="none", edgecolors=TRUE_COLOUR, linewidths=1.5)
            ax.scatter([p[keep[1]]], [p[keep[0]]], s=60, marker="x", color=PREDICTED_COLOUR, linewidths=1.5)
            half = [ZOOM_MM / spacing[k] for k in keep]
            ax.set_xlim(t[keep[1]] - half[1], t[keep[1]] + half[1])
            ax.set_ylim(t[keep[0]] - half[0], t[keep[0]] + half[0])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(plain(f"{name}\n{err:.2f} mm"), fontsize=8)
            if col == 0:
                ax.set_ylabel(view, fontsize=8)
    return to_data_uri(fig)


def write_landmark_report(results: ExperimentResults, images: Mapping[str, str], output: str | os.PathLike[str], worst_cases: int = 3) -> None:
    """Render ``reports/<experiment>.html`` for a landmark experiment (atomically).

    Args:
        results: the experiment's tables (:mod:`pipeline.tasks.landmarks.evaluate`) and logs.
        images: case id -> first-channel image on the original grid (for the overlays).
    """
    per_case, summary = results.per_case, results.summary
    case_error = per_case.groupby("case", sort=False)["radial_error_mm"].mean().sort_values(ascending=False)
    sections = [
        Section(
            "Radial error (mm)",
            f"Distance between predicted and true landmark in the world (mm), over {per_case['case'].nunique()} held-out test case(s). "
            "SDR: success detection rate, % of points within the radius.",
            table_of(summary),
        ),
        flagged_section(per_case, results.settings["landmarks"].get("min_confidence")),
        Section("Errors per landmark", figures=[Figure(error_boxplot(per_case), "Every test case is a dot; dashed lines at 2 and 4 mm.")]),
    ]
    curves = learning_curves(results.logs)
    if curves:
        sections.append(Section("Training", figures=[Figure(curves, "Training loss and mean radial error on the fold's validation cases.")]))
    gallery = [
        Figure(
            case_overlay(images[c], per_case.loc[per_case["case"] == c]),
            f"{c}: mean radial error {e:.2f} mm; green circle true, red cross predicted (projected onto the slice through the true point)",
        )
        for c, e in list(case_error.items())[:worst_cases]
        if c in images
    ]
    if gallery:
        sections.append(Section(f"Worst {len(gallery)} test case(s)", figures=gallery))
    sections.append(Section("Per case and landmark", table=table_of(per_case)))
    render_experiment_page(results, f"landmark detection ({results.settings['landmarks']['method']})", sections, output)


def flagged_section(per_case: pd.DataFrame, threshold: float | None) -> Section:
    """The section listing the flagged test landmarks (or saying that none was)."""
    flagged = flagged_rows(per_case)
    rule = f"confidence below min_confidence = {threshold:g}" if threshold is not None else "low confidence"
    if flagged.empty:
        return Section("Flagged landmarks", f"No predicted landmark was flagged ({rule}).")
    text = (
        f"{len(flagged)} of {len(per_case)} predicted landmarks were flagged ({rule}): their position may be wrong "
        "(a weak or broad heatmap peak, or far from where the other landmarks put it). They are counted in every statistic above."
    )
    return Section("Flagged landmarks", text, table_of(flagged))


def per_landmark_comparison(summaries: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per landmark and experiment: median, mean, max (mm), SDR columns and the
    number of flagged points, so every landmark's worst case is seen next to its median."""
    rows = []
    for name, summary in summaries.items():
        keep = [c for c in summary.columns if c in ("median", "mean", "max", "flagged") or c.startswith("sdr_")]
        for _, row in summary.iterrows():
            rows.append({"landmark": row["landmark"], "experiment": name, **{c: row[c] for c in keep}})
    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys(frame["landmark"])) if len(frame) else []
    frame["landmark"] = pd.Categorical(frame["landmark"], order)
    return frame.sort_values(["landmark"], kind="stable").astype({"landmark": str}).reset_index(drop=True)


def comparison_table(per_case: Mapping[str, pd.DataFrame], summaries: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per experiment: its ``all`` summary row and the paired Wilcoxon p-value of its
    per-(case, landmark) errors against the first experiment's (NaN for the first)."""
    from scipy.stats import wilcoxon

    names = list(summaries)
    key = ["case", "landmark"]
    rows = []
    for name in names:
        row = {"experiment": name, **summaries[name].set_index("landmark").loc["all"].to_dict()}
        row["n"] = int(row["n"])
        p = float("nan")
        if name != names[0]:
            pair = per_case[names[0]][key + ["radial_error_mm"]].merge(per_case[name][key + ["radial_error_mm"]], on=key)
            differences = pair["radial_error_mm_x"] - pair["radial_error_mm_y"]
            if len(pair) and np.any(differences != 0):
                p = float(wilcoxon(pair["radial_error_mm_x"], pair["radial_error_mm_y"]).pvalue)
        row[f"wilcoxon_p_vs_{names[0]}"] = p
        rows.append(row)
    return pd.DataFrame(rows)


def write_landmark_comparison(table: pd.DataFrame, dataset: str, output: str | os.PathLike[str], per_landmark: pd.DataFrame | None = None) -> None:
    """Render the comparison page of the landmark experiments (``per_landmark``: see :func:`per_landmark_comparison`)."""
    text = "Radial errors (mm) over every test case and landmark; the p-value is a paired Wilcoxon signed-rank test against the first experiment."
    sections = [Section("All landmarks", text, table_of(table, 3))]
    if per_landmark is not None:
        sections.append(
            Section("Per landmark", "Median, mean and worst radial error (mm), success detection rates (%) and flagged points.", table_of(per_landmark, 2))
        )
    render_page("Landmark experiments compared", f"Dataset: {dataset}", sections, output)
