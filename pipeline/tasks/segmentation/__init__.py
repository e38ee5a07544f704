"""Segmentation: a class for every voxel (U-Net, DeepLabV3+, SegNet); Dice, IoU and surface metrics."""

from pipeline.tasks.base import task_of_modules

TASK = task_of_modules(
    "segmentation",
    ".nii.gz",
    settings_key=None,
    training_keys=("model", "loss", "class_weights", "training"),
    prediction_keys=(),
    package="pipeline.tasks.segmentation",
    summarize="pipeline.evaluation.summary:summarize",
    training="SegmentationTraining",
    compare_output="reports/index.html",
)
