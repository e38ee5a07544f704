"""The nuclei demo: 2D fluorescence microscopy with nucleus masks drawn by people.

The stardist wheel ships one image of the 2018 Data Science Bowl (stage 1 training set,
``stardist/data/images/img2d.tif``, 512 x 512, uint16) with its instance mask
(``mask2d.tif``, one id per nucleus). The files are read with tifffile from the installed
distribution (stardist itself is never imported, so its TensorFlow-based code is not
needed). The image is cut into square tiles (``demo.tile_size``) that become the cases;
the label is foreground (any nucleus, 1) against background (0). ``demo.test_cases``
tiles, chosen with ``demo.seed``, are held out as test cases. The image has no pixel
size, so the tiles have a spacing of 1 (pixel units); each tile's origin is its position
in the full image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.demo.files import wheel_file
from pipeline.errors import SettingError
from pipeline.io.images import Geometry, read_image, write_image

SOURCE = {"image": "stardist/data/images/img2d.tif", "mask": "stardist/data/images/mask2d.tif"}
LABELS = {0: "background", 1: "nucleus"}
CHANNEL = "fluorescence"


def source_path(kind: str) -> Path:
    """Path of the bundled image (``kind`` image) or mask (``kind`` mask) in the stardist wheel.

    Raises:
        FileNotFoundError: stardist is not installed or does not ship the file.
    """
    return wheel_file("stardist", SOURCE[kind], "the nuclei demo")


def tile_grid(tile_size: int) -> tuple[int, int]:
    """Tiles per axis ``(rows, columns)`` that fit into the bundled image."""
    import tifffile

    with tifffile.TiffFile(source_path("image")) as tif:
        height, width = tif.series[0].shape[-2:]
    rows, cols = height // tile_size, width // tile_size
    if rows * cols < 2:
        raise SettingError(f"demo.tile_size {tile_size} leaves fewer than 2 tiles of the {height} x {width} image; use at most {min(height, width) // 2}")
    return rows, cols


def case_ids(tile_size: int, n_test: int, seed: int) -> dict[str, str]:
    """``{case id: split}``: tiles ``nuclei_000``... in row-major order, ``n_test`` seeded test tiles."""
    rows, cols = tile_grid(tile_size)
    count = rows * cols
    if not 1 <= n_test < count:
        raise SettingError(f"demo.test_cases must be between 1 and {count - 1} (the image gives {count} tiles of {tile_size} px), got {n_test}")
    test = set(np.random.default_rng(seed).choice(count, size=n_test, replace=False).tolist())
    return {f"nuclei_{i:03d}": ("test" if i in test else "train") for i in range(count)}


def make_case(case: str, image_path: str | os.PathLike[str], label_path: str | os.PathLike[str], tile_size: int) -> None:
    """Cut tile ``case`` (``nuclei_<index>``) and write its image (float32) and label (uint8)."""
    index = int(case.rsplit("_", 1)[1])
    rows, cols = tile_grid(tile_size)
    if not 0 <= index < rows * cols:
        raise SettingError(f"case {case!r}: tile {index} does not exist; the image gives {rows * cols} tiles of {tile_size} px")
    image, geometry = read_image(source_path("image"), case)
    mask, _ = read_image(source_path("mask"), case, dtype=None)
    y0, x0 = (index // cols) * tile_size, (index % cols) * tile_size
    window = (slice(y0, y0 + tile_size), slice(x0, x0 + tile_size))
    origin = (geometry.origin[0] + x0 * geometry.spacing[0], geometry.origin[1] + y0 * geometry.spacing[1])
    tile = Geometry(size=(tile_size, tile_size), spacing=geometry.spacing, origin=origin, direction=geometry.direction)
    write_image(np.ascontiguousarray(image[window], dtype=np.float32), tile, image_path)
    write_image(np.ascontiguousarray(mask[window] > 0, dtype=np.uint8), tile, label_path)
