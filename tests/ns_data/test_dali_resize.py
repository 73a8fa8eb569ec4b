"""The CPU pipelines' resize (torchvision's uint8 kernel inside DALI): sizes, layout, pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from .conftest import needs_dali

pytestmark = [pytest.mark.dali, needs_dali]


def _photo_crop() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[40:340, 60:477])  # 300 × 417, uint8 HWC


def test_a_square_size_gives_that_size_as_contiguous_hwc() -> None:
    from ns_data.loading.dali.resize import resize_hwc

    resized = resize_hwc(_photo_crop(), [224, 224])
    assert resized.shape == (224, 224, 3) and resized.dtype == np.uint8
    assert resized.flags["C_CONTIGUOUS"]  # DALI takes it as is


def test_one_side_resizes_the_shorter_side_rounding_the_longer_down() -> None:
    from ns_data.loading.dali.resize import resize_hwc

    assert resize_hwc(_photo_crop(), [256]).shape == (256, 355, 3)  # 417 × 256 / 300 = 355.8
    assert resize_hwc(_photo_crop().transpose(1, 0, 2).copy(), [256]).shape == (355, 256, 3)


def test_the_pixels_are_pillows_antialiased_bilinear_to_one_level() -> None:
    from ns_data.loading.dali.resize import resize_hwc

    crop = _photo_crop()
    ours = resize_hwc(crop, [224, 224]).astype(int)
    pillow = np.asarray(Image.fromarray(crop).resize((224, 224), Image.Resampling.BILINEAR))
    difference = np.abs(ours - pillow.astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_the_batch_function_resizes_every_image() -> None:
    from ns_data.loading.dali.resize import torch_resize

    images = [_photo_crop(), _photo_crop()[:50, :80].copy(), np.zeros((3, 5, 3), np.uint8)]
    assert [out.shape for out in torch_resize([32, 48])(images)] == [(32, 48, 3)] * 3
