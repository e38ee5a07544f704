"""Segmentation networks: ``build_model(name, spatial_dims, in_channels, num_classes, **settings)``.

Architectures (``MODEL_NAMES``): ``unet`` (MONAI DynUNet blocks), ``deeplabv3plus`` (Xception or
ResNet backbone, ASPP, decoder; 2D and 3D) and ``segnet`` (max-unpooling decoder). All accept any
input size (padding inside ``forward``) and return logits ``B num_classes H W [D]``; with
``deep_supervision`` in training mode, a list ``[full_res, aux1, ...]``.
"""

from pipeline.models.base import SegmentationModel
from pipeline.models.registry import MODEL_NAMES, MODEL_REGISTRY, all_model_settings, build_model, build_network, model_settings

__all__ = ["MODEL_NAMES", "MODEL_REGISTRY", "SegmentationModel", "all_model_settings", "build_model", "build_network", "model_settings"]
