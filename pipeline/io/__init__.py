"""Reading and writing images, labels and dataset manifests."""

from pipeline.io.images import Geometry, read_image, write_image

__all__ = ["Geometry", "read_image", "write_image"]
