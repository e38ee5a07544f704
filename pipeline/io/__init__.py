"""Reading and writing images, labels and dataset manifests.

The names below load lazily (PEP 562), so that modules without file I/O
(:mod:`pipeline.io.label_values`, :mod:`pipeline.io.regions`) import without SimpleITK,
as the training path on a bare GPU machine needs.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Geometry", "read_image", "write_image"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("pipeline.io.images"), name)
    raise AttributeError(f"module 'pipeline.io' has no attribute {name!r}")
