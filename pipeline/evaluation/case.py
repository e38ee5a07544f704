"""Per-case evaluation: all metrics of all foreground classes of one reference/prediction pair."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.io.label_values import ignore_value

from .conventions import Conventions
from .labelmaps import check_labels, check_pair, confusion_matrix, to_label_index
from .overlap import overlap_metrics
from .surface import (
    SurfaceDistances,
    boundary_mask,
    boundary_points_by_label,
    directed_distances,
    distance_summary,
    make_tree,
    physical_points,
)

logger = logging.getLogger(__name__)

FIRST_QUERY_BOUND_VOXELS = 2.0  # first KD-tree search radius, in units of the largest spacing

CASE_COLUMNS = [
    "case", "label", "class",
    "dice", "iou", "precision", "recall", "accuracy",
    "volume_ref_ml", "volume_pred_ml", "volume_diff_ml",
    "hd", "hd95", "assd", "nsd",
    "n_ref", "n_pred", "empty_ref", "empty_pred", "missed", "false_positive_empty",
    "tp", "fp", "fn", "tn",
]  # fmt: skip


def _empty_distances(n_ref: int, n_pred: int, worst_mm: float, conv: Conventions) -> dict[str, float]:
    """HD/HD95/ASSD/NSD when at least one mask is empty, as the conventions say."""
    if n_ref == 0 and n_pred == 0:
        if conv.empty_both == "nan":
            return dict.fromkeys(("hd", "hd95", "assd", "nsd"), math.nan)
        return {"hd": 0.0, "hd95": 0.0, "assd": 0.0, "nsd": 1.0}
    dist = worst_mm if conv.empty_distance == "worst" else math.nan
    return {"hd": dist, "hd95": dist, "assd": dist, "nsd": 0.0}


def evaluate_case(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float],
    labels: Mapping[int, str],
    conventions: Conventions = Conventions(),
    case_id: str = "",
) -> pd.DataFrame:
    """Evaluate one case: a long table with one row per foreground class.

    Args:
        reference: integer label map, 2D or 3D, any axis order (bool and whole-number floats
            are accepted too).
        prediction: label map of the same shape and axis order.
        spacing: voxel size in mm per array axis, in the same axis order as the arrays.
        labels: ``{label value: class name}``; 0 is background (added if missing) and is not
            reported. A class named ``ignore`` marks unannotated voxels: they are left out
            (background in both maps) and the class is not reported. A value in either array that is not a key raises ValueError.
        conventions: empty-mask, percentile, tolerance and boundary conventions.
        case_id: case name, used in the ``case`` column and in error messages.

    Returns:
        DataFrame with columns ``CASE_COLUMNS``: overlap metrics (fractions), volumes in ml
        (voxel count x voxel volume; in 2D the area of a 1 mm thick slab), signed
        ``volume_diff_ml = pred - ref``, distances ``hd``/``hd95``/``assd`` in mm, ``nsd``
        (fraction), voxel counts ``n_ref``/``n_pred``, empty/missed flags and the confusion
        counts ``tp``/``fp``/``fn``/``tn``.
    """
    ref = np.asarray(reference)
    pred = np.asarray(prediction)
    sp = check_pair(ref, pred, spacing, case_id)
    ignore = ignore_value(labels)
    if ignore is not None:  # unannotated voxels count as background in both, and the class is not reported
        unannotated = ref == ignore
        ref, pred = np.where(unannotated, 0, ref), np.where(unannotated | (pred == ignore), 0, pred)
        labels = {k: v for k, v in labels.items() if int(k) != ignore}
    values, names = check_labels(labels)
    k = len(values)
    tolerances = [conventions.tolerance_for(int(values[c]), names[c]) for c in range(k)]  # fail early
    ref_i = to_label_index(ref, values, "reference", case_id)
    pred_i = to_label_index(pred, values, "prediction", case_id)
    counts = confusion_matrix(ref_i, pred_i, k)
    n_total = int(ref_i.size)
    voxel_ml = float(np.prod(sp)) / 1000.0
    worst_mm = float(np.sqrt(np.sum((np.asarray(ref_i.shape) * sp) ** 2)))

    ref_edge = boundary_mask(ref_i, conventions.boundary)
    pred_edge = boundary_mask(pred_i, conventions.boundary)
    ref_points = boundary_points_by_label(ref_i, ref_edge, k)
    pred_points = boundary_points_by_label(pred_i, pred_edge, k)
    ref_flat, pred_flat = ref_i.reshape(-1), pred_i.reshape(-1)
    ref_edge_flat, pred_edge_flat = ref_edge.reshape(-1), pred_edge.reshape(-1)
    bound_mm = FIRST_QUERY_BOUND_VOXELS * float(sp.max())

    rows = []
    for c in range(1, k):
        tp = int(counts[c, c])
        n_ref, n_pred = int(counts[c].sum()), int(counts[:, c].sum())
        fn, fp = n_ref - tp, n_pred - tp
        tn = n_total - tp - fp - fn
        row: dict[str, object] = {"case": case_id, "label": int(values[c]), "class": names[c]}
        row.update(overlap_metrics(tp, fp, fn, tn, conventions.empty_both))
        row["volume_ref_ml"] = n_ref * voxel_ml
        row["volume_pred_ml"] = n_pred * voxel_ml
        row["volume_diff_ml"] = (n_pred - n_ref) * voxel_ml
        if n_ref == 0 or n_pred == 0:
            row.update(_empty_distances(n_ref, n_pred, worst_mm, conventions))
        else:
            flat_ref, flat_pred = ref_points[c], pred_points[c]
            pts_ref = physical_points(flat_ref, ref_i.shape, sp)
            pts_pred = physical_points(flat_pred, pred_i.shape, sp)
            # a boundary voxel of both masks is at distance 0: no query needed
            ref_on_pred = pred_edge_flat[flat_ref] & (pred_flat[flat_ref] == c)
            pred_on_ref = ref_edge_flat[flat_pred] & (ref_flat[flat_pred] == c)
            dists = SurfaceDistances(
                pred_to_ref=directed_distances(pts_pred, make_tree(pts_ref), pred_on_ref, bound_mm),
                ref_to_pred=directed_distances(pts_ref, make_tree(pts_pred), ref_on_pred, bound_mm),
            )
            row.update(distance_summary(dists, tolerances[c], conventions.hd_percentile, conventions.hd_percentile_method))
        row.update(
            n_ref=n_ref, n_pred=n_pred, empty_ref=n_ref == 0, empty_pred=n_pred == 0,
            missed=n_ref > 0 and n_pred == 0, false_positive_empty=n_ref == 0 and n_pred > 0,
            tp=tp, fp=fp, fn=fn, tn=tn,
        )  # fmt: skip
        rows.append(row)
    logger.debug("evaluated %s: %d classes, shape %s, spacing %s mm", case_id, k - 1, ref.shape, sp.tolist())
    return pd.DataFrame(rows, columns=CASE_COLUMNS)
