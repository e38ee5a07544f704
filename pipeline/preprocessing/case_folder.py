"""The preprocessed case folder, the one file format between preprocessing and every task.

``<preprocessed>/<case>/`` holds ``image.npy`` ``(C, *spatial)`` float32 (normalised
intensities on the plan's grid, numpy axis order), ``label.npy`` ``(*spatial)`` uint8 for
labelled cases, and ``properties.json`` (the case id, the original, cropped and resampled
geometries, the crop box, class locations and counts). Everything that reads such a
folder goes through :class:`PreprocessedCase`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def load_properties(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``properties.json`` of a preprocessed case."""
    with open(Path(folder) / "properties.json", encoding="utf-8") as handle:
        return json.load(handle)


class PreprocessedCase:
    """A preprocessed case opened lazily: ``image`` ``(C, *spatial)`` and ``label`` ``(*spatial)`` memory-mapped."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.properties = load_properties(self.folder)
        self.case: str = self.properties.get("case", self.folder.name)
        self._image: np.ndarray | None = None
        self._label: np.ndarray | None = None
        self.locations = {int(k): np.asarray(v, dtype=np.int64) for k, v in self.properties.get("class_locations", {}).items() if v}

    @property
    def image(self) -> np.ndarray:
        """``(C, *spatial)`` float32, memory-mapped read-only."""
        if self._image is None:
            self._image = np.load(self.folder / "image.npy", mmap_mode="r")
        return self._image

    @property
    def label(self) -> np.ndarray:
        """``(*spatial)`` uint8 class indices, memory-mapped read-only."""
        if self._label is None:
            self._label = np.load(self.folder / "label.npy", mmap_mode="r")
        return self._label

    def close(self) -> None:
        """Drop the memory maps (before the probabilities go back to the original grid)."""
        self._image = self._label = None


def crop_with_padding(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``array[..., start:start+size]`` over the trailing axes, zero-padded where out of bounds."""
    lead = array.ndim - len(size)
    out = np.zeros(array.shape[:lead] + tuple(size), dtype=array.dtype)
    src, dst = [slice(None)] * lead, [slice(None)] * lead
    for s, n, dim in zip(start, size, array.shape[lead:]):
        lo, hi = max(s, 0), min(s + n, dim)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = array[tuple(src)]
    return out


def random_start(shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator) -> list[int]:
    """A uniformly random patch start: inside the image where the patch fits, else a
    random placement of the image inside the (zero-padded) patch."""
    return [int(rng.integers(0, max(n - p, 0) + 1)) if n >= p else -int(rng.integers(0, p - n + 1)) for n, p in zip(shape, patch)]


def centre_crop(image: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    """The ``patch``-sized float32 crop at the centre of ``image`` ``(C, *spatial)`` (zero-padded if smaller)."""
    start = [(n - p) // 2 for n, p in zip(image.shape[1:], patch)]
    return crop_with_padding(image, start, patch).astype(np.float32)
