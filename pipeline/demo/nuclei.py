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

import importlib.metadata
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.demo import write_demo_manifest
from pipeline.io.images import Geometry, read_image, write_image

SOURCE = {"image": "stardist/data/images/img2d.tif", "mask": "stardist/data/images/mask2d.tif"}
LABELS = {0: "background", 1: "nucleus"}
CHANNEL = "fluorescence"
BASE = Path("results/demo/nuclei")


def source_path(kind: str) -> Path:
    """Path of the bundled image (``kind`` image) or mask (``kind`` mask) in the stardist wheel.

    Raises:
        FileNotFoundError: stardist is not installed or does not ship the file.
    """
    try:
        dist = importlib.metadata.distribution("stardist")
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError("the nuclei demo needs the stardist package installed (pip install stardist); its wheel ships the image") from err
    path = Path(dist.locate_file(SOURCE[kind]))
    if not path.exists():
        raise FileNotFoundError(f"stardist {dist.version} does not ship {SOURCE[kind]} (expected at {path})")
    return path


def tile_grid(tile_size: int) -> tuple[int, int]:
    """Tiles per axis ``(rows, columns)`` that fit into the bundled image."""
    import tifffile

    with tifffile.TiffFile(source_path("image")) as tif:
        height, width = tif.series[0].shape[-2:]
    rows, cols = height // tile_size, width // tile_size
    if rows * cols < 2:
        raise ValueError(f"demo.tile_size {tile_size} leaves fewer than 2 tiles of the {height} x {width} image; use at most {min(height, width) // 2}")
    return rows, cols


def case_ids(tile_size: int, n_test: int, seed: int) -> dict[str, str]:
    """``{case id: split}``: tiles ``nuclei_000``... in row-major order, ``n_test`` seeded test tiles."""
    rows, cols = tile_grid(tile_size)
    count = rows * cols
    if not 1 <= n_test < count:
        raise ValueError(f"demo.test_cases must be between 1 and {count - 1} (the image gives {count} tiles of {tile_size} px), got {n_test}")
    test = set(np.random.default_rng(seed).choice(count, size=n_test, replace=False).tolist())
    return {f"nuclei_{i:03d}": ("test" if i in test else "train") for i in range(count)}


def demo_table(config: Mapping[str, Any], channels: Sequence[str]) -> pd.DataFrame:
    """The demo's cases as a dataset table (paths under ``results/demo/nuclei``)."""
    if list(channels) != [CHANNEL]:
        raise ValueError(f"the nuclei demo has one channel named {CHANNEL!r}; dataset.channels is {list(channels)}")
    if int(config["dataset"]["dimensions"]) != 2:
        raise ValueError(f"the nuclei demo is 2D; set dataset.dimensions to 2 (it is {config['dataset']['dimensions']})")
    demo = config["demo"]
    splits = case_ids(demo["tile_size"], demo["test_cases"], demo["seed"])
    return pd.DataFrame(
        {
            "case": list(splits),
            CHANNEL: [str(BASE / "images" / f"{c}.nii.gz") for c in splits],
            "label": [str(BASE / "labels" / f"{c}.nii.gz") for c in splits],
            "split": list(splits.values()),
        }
    ).set_index("case", drop=False)


def make_case(case: str, image_path: str | os.PathLike[str], label_path: str | os.PathLike[str], tile_size: int) -> None:
    """Cut tile ``case`` (``nuclei_<index>``) and write its image (float32) and label (uint8)."""
    index = int(case.rsplit("_", 1)[1])
    rows, cols = tile_grid(tile_size)
    if not 0 <= index < rows * cols:
        raise ValueError(f"case {case!r}: tile {index} does not exist; the image gives {rows * cols} tiles of {tile_size} px")
    image, geometry = read_image(source_path("image"), case)
    mask, _ = read_image(source_path("mask"), case, dtype=None)
    y0, x0 = (index // cols) * tile_size, (index % cols) * tile_size
    window = (slice(y0, y0 + tile_size), slice(x0, x0 + tile_size))
    origin = (geometry.origin[0] + x0 * geometry.spacing[0], geometry.origin[1] + y0 * geometry.spacing[1])
    tile = Geometry(size=(tile_size, tile_size), spacing=geometry.spacing, origin=origin, direction=geometry.direction)
    write_image(np.ascontiguousarray(image[window], dtype=np.float32), tile, image_path)
    write_image(np.ascontiguousarray(mask[window] > 0, dtype=np.uint8), tile, label_path)


def write_manifest(path: str | os.PathLike[str], splits: Mapping[str, str]) -> None:
    """Write the demo manifest (``case``, ``fluorescence``, ``label``, ``split``), paths relative to it."""
    write_demo_manifest(path, splits, CHANNEL)
