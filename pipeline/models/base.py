"""Base class holding what every segmentation network shares: input checks, padding to the
network stride, cropping back, and the deep-supervision output contract.

Contract of :meth:`SegmentationModel.forward`:

- input ``B C_in H W [D]`` float, any spatial size;
- eval mode, or deep supervision off: a Tensor of logits ``B num_classes H W [D]`` at the input size;
- training mode with deep supervision on: a list ``[full_res, aux1, aux2, ...]`` where ``aux_k``
  is at a lower resolution (cropped to the part covering the input).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from pipeline.errors import SettingError
from pipeline.models.padding import crop_auxiliary, crop_to, pad_to_divisor


class SegmentationModel(nn.Module):
    """Shared forward for all architectures; subclasses implement :meth:`forward_padded`."""

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int, deep_supervision: bool) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise SettingError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingError(f"{label} must be a positive integer, got {value!r}.")
        if not isinstance(deep_supervision, bool):
            raise SettingError(f"deep_supervision must be true or false, got {deep_supervision!r}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision

    #: Names of the submodules that make the encoder (the part :meth:`encode_padded` runs);
    #: their parameters are named ``<part>.*`` in this and every network reusing them.
    encoder_parts: tuple[str, ...] = ("encoder",)

    @property
    def size_divisor(self) -> tuple[int, ...]:
        """Per-axis factor the padded input size must be a multiple of (the total stride):
        the product of ``self.strides`` (one per-axis stride per level) unless overridden."""
        total = [1] * self.spatial_dims
        for stride in self.strides:
            total = [t * s for t, s in zip(total, stride)]
        return tuple(total)

    @abstractmethod
    def encode_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest encoder features ``B F *(padded size / size_divisor)`` of a padded input;
        uses only the modules named in :attr:`encoder_parts`."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest encoder features of ``x`` ``B C_in *spatial`` (padded to the network stride)."""
        return self.encode_padded(pad_to_divisor(x, self.size_divisor))

    @abstractmethod
    def forward_padded(self, x: torch.Tensor, with_aux: bool) -> list[torch.Tensor]:
        """Run on an input padded to :attr:`size_divisor`.

        Returns ``[full_res_logits]`` or, if ``with_aux``, ``[full_res_logits, aux1, ...]`` with
        ``aux_k`` at an integer fraction of the padded size.
        """

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits ``B num_classes H W [D]`` at the size of ``x`` (a list in deep-supervised training)."""
        if x.ndim != self.spatial_dims + 2:
            axes = "B C H W" if self.spatial_dims == 2 else "B C H W D"
            raise SettingError(f"{type(self).__name__} built for {self.spatial_dims}D expects input {axes}, got shape {tuple(x.shape)}.")
        if x.shape[1] != self.in_channels:
            raise SettingError(
                f"{type(self).__name__} built for in_channels={self.in_channels} got an input with {x.shape[1]} channels (shape {tuple(x.shape)})."
            )
        if not torch.is_floating_point(x):
            raise SettingError(f"model input must be a floating point tensor, got dtype {x.dtype}.")
        spatial = tuple(x.shape[2:])
        padded = pad_to_divisor(x, self.size_divisor)
        with_aux = self.deep_supervision and self.training
        outputs = self.forward_padded(padded, with_aux)
        full = crop_to(outputs[0], spatial)
        if not with_aux:
            return full
        padded_size = tuple(padded.shape[2:])
        return [full] + [crop_auxiliary(aux, padded_size, spatial) for aux in outputs[1:]]
