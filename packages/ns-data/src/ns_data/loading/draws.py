"""Every augmentation draw of the train view, from (seed, rank, epoch, batch number).

`EpochSeeds` is the one source: the DALI backends draw each batch's random-resized-crop windows,
flips and RandAugment's ops and signs here on the host (`draw_batch` with `EpochSeeds.batch_rng`),
the torch backend seeds each sample's torchvision transforms (`EpochSeeds.sample_seed`). The DALI
pipelines take the draws as inputs and draw nothing themselves, so no backend's output depends on
how many workers, pipelines or threads decode, nor on where an epoch was resumed. The crop follows
torchvision's `RandomResizedCrop` (ten tries of area and log-uniform aspect ratio, then a center
crop of the clamped ratio), on the size in the image's header.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ns_data.loading.views import View

RANDAUGMENT_OPS = 14
"""Ops RandAugment picks from (DALI's and torchvision's suites: identity, 3 warps, 2 shifts, ...)."""
ASPECT_RATIO = (3 / 4, 4 / 3)
_TRIES = 10


@dataclass(frozen=True, slots=True)
class EpochSeeds:
    """The augmentation randomness of one rank's epoch: (seed, rank, epoch), then batch `number`."""

    seed: int
    rank: int
    epoch: int
    batch_size: int
    """Samples per batch: sample seeds of consecutive batches do not overlap."""
    _base: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        base = np.random.default_rng([self.seed, self.rank, self.epoch]).integers(2**62)
        object.__setattr__(self, "_base", int(base))

    def batch_rng(self, number: int) -> np.random.Generator:
        """The generator of batch `number`'s host-side draws (`draw_batch`)."""
        return np.random.default_rng([self.seed, self.rank, self.epoch, number])

    def sample_seed(self, number: int, position: int) -> int:
        """The seed of the sample at `position` of batch `number`; positions from the batch's size
        on belong to its stand-ins for unreadable samples."""
        return self._base + number * self.batch_size + position


@dataclass(frozen=True, slots=True)
class TrainDraws:
    """One batch's draws, a row per sample; crops are fractions of the image's height and width."""

    crop_anchor: np.ndarray  # (n, 2) float32: top / height, left / width
    crop_shape: np.ndarray  # (n, 2) float32: crop height / height, crop width / width
    mirror: np.ndarray  # (n,) int32: 1 flips the sample horizontally
    ops: np.ndarray  # (n, randaugment_n) int32: RandAugment op of each layer
    signs: np.ndarray  # (n, randaugment_n) int32: 1 negates that op's magnitude


def draw_batch(view: View, sizes: np.ndarray, rng: np.random.Generator) -> TrainDraws:
    """Draws for samples of `sizes` ((n, 2) width, height) under the train `view`."""
    count = len(sizes)
    anchor, shape = random_resized_crops(sizes, view.scale, ASPECT_RATIO, rng)
    mirror = rng.random(count) < 0.5 if view.flip else np.zeros(count, dtype=bool)
    layers = (count, view.randaugment_n)
    return TrainDraws(
        crop_anchor=anchor,
        crop_shape=shape,
        mirror=mirror.astype(np.int32),
        ops=rng.integers(0, RANDAUGMENT_OPS, layers, dtype=np.int32),
        signs=rng.integers(0, 2, layers, dtype=np.int32),
    )


def random_resized_crops(
    sizes: np.ndarray,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's RandomResizedCrop windows for images of `sizes` ((n, 2) width, height):
    (anchor, shape) as (top, left) and (height, width) fractions of each image, float32."""
    width = sizes[:, 0:1].astype(np.float64)
    height = sizes[:, 1:2].astype(np.float64)
    count = len(sizes)
    area = width * height * rng.uniform(scale[0], scale[1], (count, _TRIES))
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (count, _TRIES)))
    crop_w = np.round(np.sqrt(area * aspect))
    crop_h = np.round(np.sqrt(area / aspect))
    fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
    first = fits.argmax(axis=1)
    found = fits.any(axis=1)
    pick = np.arange(count)
    w = np.where(found, crop_w[pick, first], 0.0)
    h = np.where(found, crop_h[pick, first], 0.0)
    top = np.floor(rng.random(count) * (height[:, 0] - h + 1))
    left = np.floor(rng.random(count) * (width[:, 0] - w + 1))
    # No try fits: the whole image, its aspect ratio clamped into `ratio`, centered.
    whole_w, whole_h = width[:, 0], height[:, 0]
    clamped = np.clip(whole_w / whole_h, ratio[0], ratio[1])
    fallback_w = np.minimum(whole_w, np.round(whole_h * clamped))
    fallback_h = np.minimum(whole_h, np.round(whole_w / clamped))
    w = np.where(found, w, fallback_w)
    h = np.where(found, h, fallback_h)
    top = np.where(found, top, (whole_h - h) // 2)
    left = np.where(found, left, (whole_w - w) // 2)
    anchor = np.stack([top / whole_h, left / whole_w], axis=1).astype(np.float32)
    shape = np.stack([h / whole_h, w / whole_w], axis=1).astype(np.float32)
    return anchor, shape
