"""The CPU swaps in our RandAugment suite give DALI's own ops' images."""

from __future__ import annotations

import numpy as np
import pytest

from ns_data.loading.draws import RANDAUGMENT_OPS

from .conftest import needs_dali

pytestmark = [
    pytest.mark.dali,
    needs_dali,
    pytest.mark.filterwarnings("ignore:The external source node"),  # auto-contrast has no sign
]


def _images() -> list[np.ndarray]:
    """Photo crops, a dim low-contrast one, and one with a constant channel (64×48, uint8 HWC)."""
    from skimage import data

    rng = np.random.default_rng(0)
    images = []
    for photo in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket()):
        for _ in range(3):
            top, left = rng.integers(0, 200, 2)
            images.append(np.ascontiguousarray(photo[top : top + 48, left : left + 64]))
    images.append((images[0] // 4 + 90).astype(np.uint8))
    constant_red = images[1].copy()
    constant_red[..., 0] = 77
    images.append(constant_red)
    return images


def test_the_suite_has_the_ops_we_draw_from() -> None:
    from ns_data.loading.dali.augment import rand_augment_suite

    for cpu in (False, True):
        assert len(rand_augment_suite(9, 31, cpu=cpu)) == RANDAUGMENT_OPS


@pytest.mark.parametrize("magnitude", [0, 9, 30])
@pytest.mark.parametrize("name", ["contrast", "solarize", "auto_contrast"])
def test_cpu_swaps_match_dali(name: str, magnitude: int) -> None:
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.auto_aug.core import signed_bin

    from ns_data.loading.dali.augment import rand_augment_suite

    images = _images()
    signs = [np.array(n % 2, np.int32) for n in range(len(images))]
    (theirs,) = [op for op in rand_augment_suite(magnitude, 31, cpu=False) if op.name == name]
    (ours,) = [op for op in rand_augment_suite(magnitude, 31, cpu=True) if op.name == name]
    assert ours is not theirs

    @pipeline_def(batch_size=len(images), num_threads=1, device_id=None)
    def both():  # type: ignore[no-untyped-def]
        batch, sign = fn.external_source(
            source=lambda: (images, signs), num_outputs=2, dtype=[types.UINT8, types.INT32]
        )
        batch = fn.reshape(batch, layout="HWC")
        magnitude_bin = signed_bin(magnitude, random_sign=sign)
        return tuple(
            op(batch, magnitude_bin=magnitude_bin, num_magnitude_bins=31) for op in (theirs, ours)
        )

    pipe = both()
    pipe.build()
    dali, swapped = (np.stack([np.array(t) for t in out]) for out in pipe.run())
    assert dali.dtype == swapped.dtype == np.uint8
    difference = np.abs(dali.astype(int) - swapped.astype(int))
    # Identical on these images (measured); float rounding may differ by one level, rarely.
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3, difference.max()
    if magnitude:
        assert (dali != np.stack(images)).mean() > 0.1  # the op did change the images
