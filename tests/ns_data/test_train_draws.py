"""The train view's host-side draws: torchvision's crop algorithm, and DALI honoring the window."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop, v2

from ns_data.loading.draws import ASPECT_RATIO, RANDAUGMENT_OPS, draw_batch, random_resized_crops
from ns_data.loading.views import View

from .conftest import needs_dali


def test_crops_follow_torchvision() -> None:
    """Same area and aspect-ratio distribution as torchvision's RandomResizedCrop, inside the image."""
    width, height, count = 500, 375, 20_000
    anchor, shape = random_resized_crops(
        np.tile([width, height], (count, 1)), (0.08, 1.0), ASPECT_RATIO, np.random.default_rng(0)
    )
    assert (anchor >= 0).all() and (anchor + shape <= 1 + 1e-6).all()
    ours_area = shape.prod(axis=1)
    ours_aspect = np.log(shape[:, 1] * width / (shape[:, 0] * height))
    torch.manual_seed(0)
    image = torch.zeros(3, height, width)
    theirs = np.array(
        [RandomResizedCrop.get_params(image, [0.08, 1.0], list(ASPECT_RATIO)) for _ in range(count)]
    )
    their_area = theirs[:, 2] * theirs[:, 3] / (width * height)
    their_aspect = np.log(theirs[:, 3] / theirs[:, 2])
    assert abs(ours_area.mean() - their_area.mean()) < 0.01
    assert abs(ours_aspect.mean() - their_aspect.mean()) < 0.01
    assert abs(ours_aspect.std() - their_aspect.std()) < 0.01
    assert abs(np.log(4 / 3)) + 0.01 > np.abs(ours_aspect).max()


def test_crop_falls_back_to_a_centered_clamped_window() -> None:
    """No try fits a 1000×10 image: the centered window of ratio 4/3 at full height, as torchvision."""
    anchor, shape = random_resized_crops(
        np.array([[1000, 10]]), (0.5, 1.0), ASPECT_RATIO, np.random.default_rng(0)
    )
    crop_width = round(10 * 4 / 3)
    np.testing.assert_allclose(shape[0], [1.0, crop_width / 1000], rtol=1e-6)
    np.testing.assert_allclose(anchor[0], [0.0, ((1000 - crop_width) // 2) / 1000], rtol=1e-6)


def test_draws_are_a_function_of_the_generator() -> None:
    view = View(image_size=32, train=True, randaugment_n=3)
    sizes = np.array([[40, 30]] * 64)
    one = draw_batch(view, sizes, np.random.default_rng([1, 2]))
    two = draw_batch(view, sizes, np.random.default_rng([1, 2]))
    for name in ("crop_anchor", "crop_shape", "mirror", "ops", "signs"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    assert one.ops.shape == (64, 3) and set(np.unique(one.ops)) <= set(range(RANDAUGMENT_OPS))
    assert 0 < one.mirror.mean() < 1 and set(np.unique(one.signs)) == {0, 1}
    unflipped = draw_batch(
        View(image_size=32, train=True, flip=False), sizes, np.random.default_rng()
    )
    assert not unflipped.mirror.any()


@needs_dali
def test_dali_decodes_the_drawn_window() -> None:
    """DALI's train pipeline, fed a window, matches torchvision cropping that window by hand."""
    from skimage import data

    from ns_data.loading.dali.pipelines import view_pipeline

    photo = np.ascontiguousarray(data.astronaut()[:300, :400])  # 400×300, not square
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=95)
    encoded = np.frombuffer(buffer.getvalue(), np.uint8)
    anchor = np.array([0.1, 0.5], np.float32)  # top, left
    shape = np.array([0.6, 0.25], np.float32)  # height, width: a tall window on the right
    view = View(image_size=48, train=True, randaugment_n=0, flip=False)

    def source() -> tuple[list[np.ndarray], ...]:
        return [encoded], [np.array([0])], [anchor], [shape], [np.array([0], np.int32)]

    pipe = view_pipeline(source, view, False, batch_size=1, num_threads=1, device_id=None)
    pipe.build()
    ours = torch.from_dlpack(pipe.run()[0].as_tensor())[0]
    decoded = torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1)
    top, left, height, width = 30, 200, 180, 100
    window = decoded[:, top : top + height, left : left + width]
    reference = v2.Compose(
        [
            v2.Resize([48, 48], antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(view.mean), list(view.std)),
        ]
    )(window)
    difference = (ours - reference).abs() * torch.tensor(view.std)[:, None, None]
    assert difference.mean() < 0.01, difference.mean()


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_headers_give_their_size(lossless: bool) -> None:
    from ns_data.images.structure import read_header

    pixels = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for image in (Image.fromarray(pixels), Image.fromarray(pixels).convert("RGBA")):
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", lossless=lossless, exif=b"Exif\x00\x00MM\x00*")
        header = read_header(buffer.getvalue())
        assert not isinstance(header, str) and (header.width, header.height) == (53, 37)
