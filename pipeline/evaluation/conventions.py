"""Conventions that decide what a segmentation metric means in the corner cases.

Every field of :class:`Conventions` is also a key of the ``evaluation:`` section of the
workflow config (``workflow/schemas/evaluation.schema.yaml`` holds the same names, choices and
defaults), so a report can always say which conventions produced its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ToleranceSpec = float | Mapping[int | str, float]

EMPTY_BOTH_CHOICES = ("one", "nan")
EMPTY_DISTANCE_CHOICES = ("worst", "nan")
HD_PERCENTILE_METHODS = ("max_directed", "pooled")
BOUNDARY_CHOICES = ("face", "full")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"evaluation.{name} must be one of {list(choices)}, got {value!r}.")


def _check_tolerance(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"evaluation.surface_tolerance_mm[{key}] must be a number of mm, got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"evaluation.surface_tolerance_mm[{key}] must be a finite number >= 0 mm, got {value!r}.")
    return value


@dataclass(frozen=True)
class Conventions:
    """How metrics treat empty masks, percentiles, tolerances and boundaries.

    Attributes:
        empty_both: Dice/IoU (and precision/recall) of a class that is absent from both the
            reference and the prediction: ``"one"`` gives 1.0 (a correct "nothing there"),
            ``"nan"`` gives NaN (nnU-Net and MONAI ``ignore_empty=True`` style). With ``"nan"`` the
            distances and NSD of such a class are NaN too; with ``"one"`` the distances are 0 mm
            and NSD is 1.0. This is a per-case convention: a class that is absent from every
            reference is not evaluable, and the class-level summary
            (:func:`pipeline.evaluation.summary.summarize`) reports it as such (NaN scores,
            ``n_reference`` 0, a note, left out of ``mean_foreground``), never as 1.0.
        empty_distance: HD/HD95/ASSD when exactly one of the two masks is empty: ``"worst"`` gives
            the diagonal of the image's field of view in mm (``sqrt(sum((shape * spacing)**2))``,
            larger than any distance that can occur inside the image, so a miss is penalised and
            still visible); ``"nan"`` gives NaN (MONAI returns inf). NSD is 0.0 in that case.
        hd_percentile_method: how ``hd95`` combines the two directed distance sets:
            ``"max_directed"`` = max of the two directed percentiles (MONAI's ``percentile=95``);
            ``"pooled"`` = the percentile of both sets pooled (the older "95% HD" of some papers).
            Percentiles interpolate linearly (``numpy.percentile`` default, ``torch.quantile``).
        hd_percentile: the percentile used for the ``hd95`` column, in [0, 100]. The column keeps
            its name whatever the value, so tables stay comparable in layout.
        surface_tolerance_mm: tolerance in mm of the normalised surface Dice (NSD): a boundary
            point counts as correct if the other boundary is within this distance (``<=``, with
            1e-6 mm slack for round-off). Either one number for all classes or a mapping from
            label value or class name to mm; a key ``"default"`` covers classes not named.
        boundary: which mask voxels form the boundary (voxel centres are the boundary points):
            ``"face"`` = voxels with at least one face neighbour (4-neighbourhood in 2D,
            6 in 3D) outside the mask, as MONAI (scipy ``binary_erosion``) does; ``"full"`` = any
            of the 8 (2D) / 26 (3D) neighbours outside. Voxels at the image border count as
            boundary (outside the image is outside the mask).
    """

    empty_both: str = "one"
    empty_distance: str = "worst"
    hd_percentile_method: str = "max_directed"
    hd_percentile: float = 95.0
    surface_tolerance_mm: ToleranceSpec = 1.0
    boundary: str = "face"

    def __post_init__(self) -> None:
        _check_choice("empty_both", self.empty_both, EMPTY_BOTH_CHOICES)
        _check_choice("empty_distance", self.empty_distance, EMPTY_DISTANCE_CHOICES)
        _check_choice("hd_percentile_method", self.hd_percentile_method, HD_PERCENTILE_METHODS)
        _check_choice("boundary", self.boundary, BOUNDARY_CHOICES)
        pct = self.hd_percentile
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 <= pct <= 100:
            raise ValueError(f"evaluation.hd_percentile must be a number in [0, 100], got {pct!r}.")
        tol = self.surface_tolerance_mm
        if isinstance(tol, Mapping):
            # store as a sorted tuple of pairs so the frozen dataclass stays hashable
            pairs = tuple(sorted((str(k), _check_tolerance(str(k), v)) for k, v in tol.items()))
            object.__setattr__(self, "surface_tolerance_mm", pairs)
        elif isinstance(tol, tuple):  # already normalised (e.g. dataclasses.replace)
            pairs = tuple((str(k), _check_tolerance(str(k), v)) for k, v in tol)
            object.__setattr__(self, "surface_tolerance_mm", pairs)
        else:
            object.__setattr__(self, "surface_tolerance_mm", _check_tolerance("all", tol))

    def tolerance_for(self, label: int, name: str) -> float:
        """NSD tolerance in mm for one class, looked up by label value, then name, then ``default``."""
        tol = self.surface_tolerance_mm
        if isinstance(tol, float):
            return tol
        table = dict(tol)
        for key in (str(label), name, "default"):
            if key in table:
                return table[key]
        raise ValueError(
            f"evaluation.surface_tolerance_mm has no entry for class {name!r} (label {label}); found keys {sorted(table)}. Add the class or a 'default' key."
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (tolerance mapping as a dict), for tables, JSON and reports."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(out["surface_tolerance_mm"], tuple):
            out["surface_tolerance_mm"] = dict(out["surface_tolerance_mm"])
        return out

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> Conventions:
        """Build from the ``evaluation:`` config section; unknown keys raise ValueError naming them."""
        section = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"Unknown evaluation config keys {unknown}; valid keys are {sorted(known)}.")
        return cls(**section)
