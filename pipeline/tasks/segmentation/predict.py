"""Segmentation inference: a preprocessed case to a label map on its original grid and header.

The fold ensemble's softmax is stitched on the preprocessed grid
(:func:`pipeline.inference.sliding_window.sliding_window`), resampled class by class back
onto the original grid and arg-maxed; optional class probabilities are saved as float16.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.atomic import atomic_path
from pipeline.errors import ConfigError
from pipeline.inference.ensemble import Ensemble, decide_mirror
from pipeline.inference.sliding_window import sliding_window, stitch_dtype
from pipeline.io.images import Geometry, image_case_id, write_image
from pipeline.io.label_values import declared_values, to_label_values
from pipeline.io.regions import output_channels, paint_values
from pipeline.models import build_network
from pipeline.preprocessing.case_folder import PreprocessedCase
from pipeline.preprocessing.inverse import restore_probabilities, restore_regions
from pipeline.preprocessing.resample import resample_array

log = logging.getLogger(__name__)


def predict_case(
    models: Sequence[torch.nn.Module],
    folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    patch: Sequence[int],
    settings: Mapping[str, Any],
    num_classes: int,
    batch_size: int = 2,
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
    label_values: Sequence[int] | None = None,
    region_values: Sequence[int] | None = None,
) -> np.ndarray:
    """Predict a preprocessed case and write labels on its original grid and header.

    Args:
        settings: the experiment's ``inference`` section (overlap, mirror resolved to a bool,
            mirror_axes, save_probabilities).
        num_classes: output channels of the models (sets the stitching dtype).
        label_values: the declared label values, sorted (the file gets them in place of
            the class indices); None writes the indices ``0..K-1``.
        region_values: region training (:mod:`pipeline.io.regions`): the models have one
            sigmoid output per region, and each region (> 0.5) is painted with its value.
    Returns:
        The written label map (numpy order; uint8, or wider for label values above 255).
    """
    if not isinstance(settings["mirror"], bool):
        raise ConfigError(
            f"inference.mirror must be resolved to true or false before predicting (got {settings['mirror']!r}; see pipeline.inference.ensemble.decide_mirror)"
        )
    case = PreprocessedCase(folder)
    out_dtype = stitch_dtype(case.image.shape[1:], num_classes)
    activation = "softmax" if region_values is None else "sigmoid"
    window = (settings["overlap"], settings["mirror"], batch_size, device, amp, settings.get("mirror_axes"), out_dtype, activation)
    prob = sliding_window(models, case.image, patch, *window)
    case.close()  # unmap the input before the probabilities go back to the original grid
    channels = (prob[k].float().numpy() for k in range(prob.shape[0]))
    if region_values is not None:
        labels = restore_regions(channels, case.properties, region_values)
    else:
        labels = restore_probabilities(channels, case.properties)
        labels = to_label_values(labels, label_values) if label_values is not None else labels
    write_image(labels, Geometry.from_dict(case.properties["original_geometry"]), output)
    if settings.get("save_probabilities"):
        write_probabilities(prob, case.properties, probabilities_path(output), background=region_values is None)
    return labels


def probabilities_path(output: str | os.PathLike[str]) -> Path:
    """``<case>.npz`` beside the prediction ``<case>.nii.gz`` (any image ending)."""
    out = Path(output)
    return out.with_name(image_case_id(out) + ".npz")


def write_probabilities(prob: torch.Tensor, properties: Mapping[str, Any], path: str | os.PathLike[str], background: bool = True) -> None:
    """Class probabilities ``(K, *spatial)`` (or region probabilities, ``background`` False)
    on the original grid as compressed float16.

    Resampled one channel at a time; outside the crop box the background class has
    probability 1 (every region 0).
    """
    resampled = Geometry.from_dict(properties["resampled_geometry"])
    cropped = Geometry.from_dict(properties["cropped_geometry"])
    original = Geometry.from_dict(properties["original_geometry"])
    box = tuple(slice(a, b) for a, b in properties["crop_box"])
    out = np.zeros((prob.shape[0], *original.shape_numpy), dtype=np.float16)
    out[0] = 1.0 if background else 0.0
    for k in range(prob.shape[0]):
        out[k][box] = resample_array(prob[k].float().numpy(), resampled, cropped, "linear").astype(np.float16)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, probabilities=out)


class Predictor:
    """A fold ensemble loaded once, with its plan and resolved inference settings."""

    def __init__(self, checkpoints: Sequence[str | os.PathLike[str]], inference: Mapping[str, Any], device: torch.device | None = None) -> None:
        ensemble = Ensemble.load(checkpoints, build_network, "segmentation", inference, device)
        self.models, self.device, self.amp, self.plan = ensemble.models, ensemble.device, ensemble.amp, ensemble.state["plan"]
        self.settings = {**inference, "mirror": decide_mirror(inference["mirror"], checkpoints)}

    def __call__(self, case_dir: str | os.PathLike[str], output: str | os.PathLike[str]) -> np.ndarray:
        """Predict one preprocessed case folder into ``output``."""
        plan = self.plan
        return predict_case(
            self.models,
            case_dir,
            output,
            plan["patch_size"],
            self.settings,
            output_channels(plan),
            plan["batch_size"],
            self.device,
            self.amp,
            declared_values(plan["labels"]),
            paint_values(plan["regions"]) if plan.get("regions") else None,
        )
