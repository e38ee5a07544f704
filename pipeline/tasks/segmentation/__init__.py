"""Segmentation: a class for every voxel (U-Net, DeepLabV3+, SegNet); Dice, IoU and surface metrics."""

from pipeline.tasks.base import task_of_modules

TASK = task_of_modules(
    "segmentation",
    ".nii.gz",
    summarize="pipeline.evaluation.summary:summarize",
    training="SegmentationTraining",
    compare_output="reports/index.html",
    settings_key=None,
    training_keys=("model", "loss", "class_weights", "training"),
)
