"""The matrix-product resize equals torch's (bi/tri)linear interpolation, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.models.interpolate import interpolation_matrix, resize

CASES = [
    ((2, 3, 5, 7), (20, 28)),  # 2D upsampling by 4, as the DeepLabV3+ decoder does
    ((1, 2, 16, 9), (9, 23)),  # 2D, one axis down, one up by a non-integer factor
    ((1, 2, 4, 6, 3), (13, 6, 11)),  # 3D, one axis unchanged
    ((2, 1, 9, 8, 7), (3, 17, 2)),  # 3D, downsampling to very few samples
]


@pytest.mark.parametrize("shape, size", CASES)
def test_resize_equals_interpolate_values_and_gradients(shape: tuple[int, ...], size: tuple[int, ...]) -> None:
    mode = "bilinear" if len(size) == 2 else "trilinear"
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(shape[:2] + size, dtype=torch.float64)
    ours = resize(x, size)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    theirs = F.interpolate(x, size=size, mode=mode, align_corners=False)
    (grad_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=0, atol=1e-12)


def test_interpolation_rows_sum_to_one_and_identity_when_sizes_match() -> None:
    matrix = interpolation_matrix(5, 12, torch.float64, torch.device("cpu"))
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(12, dtype=torch.float64))
    assert ((matrix != 0).sum(dim=1) <= 2).all()
    x = torch.randn(1, 2, 4, 5)
    assert resize(x, (4, 5)) is x


def test_resize_keeps_dtype_and_rejects_wrong_size_length() -> None:
    x = torch.randn(1, 2, 4, 5, dtype=torch.bfloat16)
    assert resize(x, (8, 10)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"size must give 2 spatial lengths .* got \(8,\)"):
        resize(x, (8,))
