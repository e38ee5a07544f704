"""Input checks of one case against the training fingerprint: named flags with the value found
and the training range.

The ranges come from the dataset fingerprint (:func:`pipeline.preprocessing.fingerprint.compute_fingerprint`:
per training case its spacing and shape, per channel the pooled foreground percentiles) and,
where they are at hand, the training cases' check files (:func:`pipeline.io.check.check_case`:
their direction cosines and foreground intensity samples), which the fingerprint is made from.
:func:`training_ranges` derives them; the fingerprint file itself is left as it is.

A flag is raised, per axis or channel, for

- ``spacing``: outside ``[min / SPACING_FACTOR, max * SPACING_FACTOR]`` of the training cases;
- ``field_of_view`` (voxels times spacing, mm): below ``FOV_BELOW`` times the training
  minimum or above ``FOV_ABOVE`` times the training maximum;
- ``orientation``: axis codes (:func:`orientation_code`) seen in no training case. The
  pipeline does not reorient before predicting (preprocessing keeps the voxel axes), so a
  flipped or permuted image shows the network its anatomy flipped or permuted. Checked only
  with the training cases' check files (the fingerprint holds no directions);
- ``channels``: a channel count other than the model's (then no intensity flag);
- ``dimensions``: 2D against a 3D model or back (then no spacing, field of view or
  orientation flag);
- ``intensity_p01``, ``intensity_p50``, ``intensity_p99``: the 1st, 50th and 99th percentile
  of a channel over the case's foreground outside the training cases' range of the same
  percentile, widened on each side by ``INTENSITY_MARGIN`` times the training foreground's
  spread (pooled 99.5th minus 0.5th percentile). The foreground is what the fingerprint
  sampled: the label's voxels > 0 (for a new image: the predicted label's), or, where that
  is empty or not given, the voxels nonzero in any channel. Without check files the range of
  every percentile is the pooled 0.5th-99.5th percentile range of the fingerprint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import SettingError
from pipeline.io.images import Geometry

#: Spacing per axis is flagged outside [training min / factor, training max * factor].
SPACING_FACTOR = 1.5
#: Field of view per axis is flagged below this times the training minimum ...
FOV_BELOW = 0.5
#: ... or above this times the training maximum.
FOV_ABOVE = 2.0
#: Intensity ranges are widened on each side by this fraction of the training foreground's spread.
INTENSITY_MARGIN = 0.5
#: Flag name -> percentile (0-100) of a channel's foreground intensities.
PERCENTILES = {"intensity_p01": 1.0, "intensity_p50": 50.0, "intensity_p99": 99.0}
#: Percentiles of a larger foreground are taken over an evenly strided subset of this many voxels.
MAX_VOXELS = 1_000_000
#: Letters of the world axes (ITK's LPS world: +x left, +y posterior, +z superior), negative then positive.
AXIS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))


@dataclass(frozen=True)
class Flag:
    """One finding on one case.

    Attributes:
        case: the case id.
        name: what was checked (``spacing``, ``field_of_view``, ``orientation``, ``channels``,
            ``dimensions``, ``intensity_p01``, ``intensity_p50``, ``intensity_p99``).
        channel: the channel's name for intensity flags, else None.
        axis: the image axis in ITK order (0 = x) for spacing and field of view, else None.
        value: the case's value (mm, an intensity, a count, or axis codes such as ``RPS``).
        low, high: the training cases' range (before any tolerance); for ``orientation`` both
            are the training orientations joined by ``/``.
        message: one line naming the case, the value and the training range.
    """

    case: str
    name: str
    channel: str | None
    axis: int | None
    value: float | int | str
    low: float | int | str
    high: float | int | str
    message: str


@dataclass(frozen=True)
class TrainingRanges:
    """What the training cases spanned (:func:`training_ranges`).

    Attributes:
        cases: number of training cases.
        spacing: ``(min, max)`` mm per axis, ITK order ``(x, y[, z])``.
        field_of_view: ``(min, max)`` mm per axis, ITK order.
        channels: the channel names, in the model's order.
        orientations: the axis codes seen (:func:`orientation_code`); empty when unknown.
        intensity: channel -> percentile flag name -> ``(min, max)`` over the training cases.
        spread: channel -> pooled foreground 99.5th minus 0.5th percentile (the margin's unit).
        per_case_intensity: whether ``intensity`` comes from per-case samples (check files)
            rather than from the fingerprint's pooled percentiles.
    """

    cases: int
    spacing: tuple[tuple[float, float], ...]
    field_of_view: tuple[tuple[float, float], ...]
    channels: tuple[str, ...]
    orientations: tuple[str, ...]
    intensity: Mapping[str, Mapping[str, tuple[float, float]]]
    spread: Mapping[str, float]
    per_case_intensity: bool


def orientation_code(direction: Sequence[float]) -> str:
    """Axis codes of a direction cosine matrix, e.g. ``LPS`` for the identity.

    Args:
        direction: row-major ``dim*dim`` cosines (ITK); column ``j`` is where image axis ``j``
            (ITK order) points in the world. Each axis is named by the world axis it is closest
            to and the side it runs towards (ITK/DICOM convention: ``L`` = towards the left).
    """
    n = math.isqrt(len(direction))
    matrix = np.asarray(direction, dtype=float).reshape(n, n)
    letters = []
    for column in matrix.T:
        world = int(np.argmax(np.abs(column)))
        letters.append(AXIS_LETTERS[world][int(column[world] > 0)] if world < len(AXIS_LETTERS) else "?")
    return "".join(letters)


def _field(fingerprint: Mapping[str, Any], key: str) -> Any:
    if key not in fingerprint:
        raise SettingError(f"the fingerprint has no {key!r} entry (found {sorted(fingerprint)[:12]}); expected one written by the fingerprint stage")
    return fingerprint[key]


def training_ranges(fingerprint: Mapping[str, Any], checks: Sequence[Mapping[str, Any]] = ()) -> TrainingRanges:
    """The training cases' ranges from the fingerprint and, optionally, their check results.

    Args:
        fingerprint: as :func:`pipeline.preprocessing.fingerprint.compute_fingerprint` returns
            it (``spacings`` mm ITK order and ``shapes`` voxels numpy order per case,
            ``intensity`` per channel).
        checks: the training cases' check results (``geometry``, ``intensity_samples``);
            failed ones are skipped. They add the orientations and per-case intensity ranges.

    Raises:
        SettingError: the fingerprint lacks an entry or its spacings and shapes do not pair up.
    """
    spacings = np.asarray(_field(fingerprint, "spacings"), dtype=float)
    shapes = np.asarray(_field(fingerprint, "shapes"), dtype=float)
    if spacings.ndim != 2 or spacings.shape != shapes.shape or not len(spacings):
        raise SettingError(f"the fingerprint's spacings {spacings.shape} and shapes {shapes.shape} do not give one (spacing, shape) per training case")
    fov = shapes[:, ::-1] * spacings
    stats = _field(fingerprint, "intensity")
    channels = tuple(str(c) for c in stats)
    usable = [c for c in checks if not c.get("failed") and "geometry" in c]
    orientations = tuple(sorted({orientation_code(c["geometry"]["direction"]) for c in usable}))
    sampled = [c for c in usable if len(c.get("intensity_samples") or []) == len(channels)]
    intensity: dict[str, dict[str, tuple[float, float]]] = {}
    spread: dict[str, float] = {}
    for index, name in enumerate(channels):
        pooled = stats[name] or {}
        if "percentile_00_5" not in pooled or "percentile_99_5" not in pooled:
            continue  # no intensity statistics for this channel: not checked
        low, high = float(pooled["percentile_00_5"]), float(pooled["percentile_99_5"])
        spread[name] = high - low
        if sampled:
            per_case = np.array([np.percentile(np.asarray(c["intensity_samples"][index], dtype=float), list(PERCENTILES.values())) for c in sampled])
            intensity[name] = {flag: (float(per_case[:, k].min()), float(per_case[:, k].max())) for k, flag in enumerate(PERCENTILES)}
        else:
            intensity[name] = {flag: (low, high) for flag in PERCENTILES}
    return TrainingRanges(
        cases=len(spacings),
        spacing=tuple((float(lo), float(hi)) for lo, hi in zip(spacings.min(axis=0), spacings.max(axis=0))),
        field_of_view=tuple((float(lo), float(hi)) for lo, hi in zip(fov.min(axis=0), fov.max(axis=0))),
        channels=channels,
        orientations=orientations,
        intensity=intensity,
        spread=spread,
        per_case_intensity=bool(sampled),
    )


def _g(value: float) -> str:
    return f"{value:.4g}"


def _geometry_flags(case: str, geometry: Geometry, ranges: TrainingRanges) -> list[Flag]:
    flags = []
    fov = np.asarray(geometry.size, dtype=float) * np.asarray(geometry.spacing, dtype=float)
    for axis, (value, (low, high)) in enumerate(zip(geometry.spacing, ranges.spacing)):
        allowed = (low / SPACING_FACTOR, high * SPACING_FACTOR)
        if not allowed[0] <= value <= allowed[1]:
            message = (
                f"case {case}: spacing axis {axis} is {_g(value)} mm, training cases had {_g(low)}-{_g(high)} mm "
                f"(flagged outside {_g(allowed[0])}-{_g(allowed[1])} mm)"
            )
            flags.append(Flag(case, "spacing", None, axis, float(value), low, high, message))
    for axis, (value, (low, high)) in enumerate(zip(fov.tolist(), ranges.field_of_view)):
        allowed = (low * FOV_BELOW, high * FOV_ABOVE)
        if not allowed[0] <= value <= allowed[1]:
            message = (
                f"case {case}: field of view axis {axis} is {_g(value)} mm, training cases had {_g(low)}-{_g(high)} mm "
                f"(flagged outside {_g(allowed[0])}-{_g(allowed[1])} mm)"
            )
            flags.append(Flag(case, "field_of_view", None, axis, float(value), low, high, message))
    code = orientation_code(geometry.direction)
    if ranges.orientations and code not in ranges.orientations:
        seen = "/".join(ranges.orientations)
        message = f"case {case}: orientation is {code}, training cases had {seen} (the network sees the image's axes as stored)"
        flags.append(Flag(case, "orientation", None, None, code, seen, seen, message))
    return flags


def _foreground_values(channel: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A channel's values inside ``mask``, as float64, strided down to about :data:`MAX_VOXELS`."""
    values = channel[mask]
    step = max(1, -(-values.size // MAX_VOXELS))
    return values[::step].astype(np.float64)


def _intensity_flags(case: str, image: np.ndarray, ranges: TrainingRanges, foreground: np.ndarray | None, foreground_name: str) -> list[Flag]:
    given = foreground is not None and bool(foreground.any())
    mask = foreground if given else (image != 0).any(axis=0)
    where = foreground_name if given else "nonzero voxels"
    if not mask.any():
        mask, where = np.ones(image.shape[1:], dtype=bool), "all voxels"
    flags = []
    for channel, name in zip(image, ranges.channels):
        if name not in ranges.intensity:
            continue
        found = np.percentile(_foreground_values(channel, mask), list(PERCENTILES.values()))
        margin = INTENSITY_MARGIN * ranges.spread[name]
        for (flag, percentile), value in zip(PERCENTILES.items(), found.tolist()):
            low, high = ranges.intensity[name][flag]
            if not low - margin <= value <= high + margin:
                message = (
                    f"case {case}: channel {name} intensity percentile {percentile:g} ({where}) is {_g(value)}, training cases had "
                    f"{_g(low)} to {_g(high)} (flagged outside {_g(low - margin)} to {_g(high + margin)})"
                )
                flags.append(Flag(case, flag, name, None, float(value), low, high, message))
    return flags


def check_case(
    case: str,
    image: np.ndarray,
    geometry: Geometry,
    ranges: TrainingRanges,
    foreground: np.ndarray | None = None,
    model_channels: int | None = None,
    foreground_name: str = "label foreground",
) -> list[Flag]:
    """The flags of one case (empty: nothing unlike the training cases was found).

    Args:
        case: the case id, for the messages.
        image: float ``(C, Z, Y, X)`` (or ``(C, Y, X)``), the channels as read, numpy order,
            in the file's intensity units.
        geometry: the channels' shared grid (ITK order: size, spacing mm, origin mm, direction).
        ranges: the training ranges (:func:`training_ranges`).
        foreground: bool ``(Z, Y, X)`` (numpy order, the image's grid) of the voxels whose
            intensities are compared: the label's (or prediction's) voxels > 0; None or empty:
            the voxels nonzero in any channel.
        model_channels: the model's channel count (default: the fingerprint's channels).
        foreground_name: what ``foreground`` is, for the messages (e.g. ``predicted foreground``).
    """
    flags = []
    expected = len(ranges.channels) if model_channels is None else int(model_channels)
    if image.shape[0] != expected:
        message = f"case {case}: {image.shape[0]} channel(s), the model was trained on {expected} ({', '.join(ranges.channels)})"
        flags.append(Flag(case, "channels", None, None, int(image.shape[0]), expected, expected, message))
    if geometry.ndim != len(ranges.spacing):
        n = len(ranges.spacing)
        message = f"case {case}: the image is {geometry.ndim}D, the training cases were {n}D"
        flags.append(Flag(case, "dimensions", None, None, geometry.ndim, n, n, message))
    else:
        flags += _geometry_flags(case, geometry, ranges)
    if not flags or flags[0].name != "channels":
        mask = None if foreground is None else np.asarray(foreground, dtype=bool)
        if mask is not None and mask.shape != image.shape[1:]:
            mask = None
        flags += _intensity_flags(case, image, ranges, mask, foreground_name)
    return flags
