"""Padding to the network stride and cropping back."""

import pytest
import torch

from pipeline.models.padding import crop_auxiliary, crop_to, pad_to_divisor, padded_size


def test_padded_size_rounds_up_to_the_divisor() -> None:
    assert padded_size((19, 23), (16, 16)) == (32, 32)
    assert padded_size((32, 17, 9), (16, 16, 8)) == (32, 32, 16)
    assert padded_size((13, 11, 9), (4, 4, 1)) == (16, 12, 9)


def test_padded_size_keeps_more_than_one_element_at_the_coarsest_level() -> None:
    assert padded_size((5, 5), (8, 8)) == (16, 8)
    assert padded_size((3,), (1,)) == (3,)


def test_padded_size_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match=r"\(19, 23\) and \(16,\)"):
        padded_size((19, 23), (16,))


def test_pad_then_crop_round_trip() -> None:
    x = torch.randn(2, 3, 5, 7, 9)
    padded = pad_to_divisor(x, (4, 4, 4))
    assert padded.shape == (2, 3, 8, 8, 12)
    assert torch.equal(crop_to(padded, (5, 7, 9)), x)
    assert padded[:, :, 5:].abs().sum() == 0


def test_crop_auxiliary_keeps_the_part_covering_the_image() -> None:
    aux = torch.zeros(1, 1, 8, 4)  # padded 32x32 at factor 4 and 8
    assert crop_auxiliary(aux, (32, 32), (19, 23)).shape == (1, 1, 5, 3)
