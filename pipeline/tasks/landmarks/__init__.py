"""Landmark detection on the segmentation networks: heatmap regression or direct coordinate
regression, sub-voxel peak extraction, radial-error evaluation and reports.

Coordinates that cross a file boundary are world millimetres in the ITK/LPS frame that
SimpleITK uses; inside the package, points on a grid are continuous voxel indices in numpy
axis order ``(z, y, x)`` (``(y, x)`` in 2D).
"""

from pipeline.tasks.base import task_of_modules

TASK = task_of_modules(
    "landmarks",
    ".tsv",
    summarize="pipeline.tasks.landmarks.evaluate:summarize_errors",
    training="LandmarkTraining",
    compare_output="reports/landmarks/comparison.html",
)
