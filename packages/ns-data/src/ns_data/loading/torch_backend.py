"""The plain PyTorch backend (torchvision v2 in DataLoader workers) for machines without DALI.

Each sample's augmentation is seeded from its place in the epoch (`EpochSeeds.sample_seed`), so the
output does not depend on the number of workers and a resumed epoch draws the same augmentations. Workers never
raise on a bad image: they report it, and the loader skips or raises (`on_error`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from torchvision.transforms import v2

from ns_data.images.check import checked_decode
from ns_data.loading.decoded import Decoded, Spares
from ns_data.loading.draws import ASPECT_RATIO, EpochSeeds
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet

_Item = tuple[torch.Tensor | None, int, str | None]


def build_transform(view: View) -> v2.Transform:
    """The torchvision v2 ops that match `loading.dali.pipelines.view_pipeline` for `view`."""
    size = [view.image_size, view.image_size]
    if view.train:
        ops: list[v2.Transform] = [
            v2.RandomResizedCrop(size, scale=view.scale, ratio=ASPECT_RATIO, antialias=True)
        ]
        if view.randaugment_n > 0:
            ops.append(
                v2.RandAugment(
                    num_ops=view.randaugment_n,
                    magnitude=view.randaugment_m,
                    num_magnitude_bins=View.RANDAUGMENT_BINS,
                    interpolation=v2.InterpolationMode(view.randaugment_interpolation),
                    fill=View.RANDAUGMENT_FILL,
                )
            )
        if view.flip:
            ops.append(v2.RandomHorizontalFlip())
    else:
        crop = partial(center_crop, size=view.image_size)
        ops = [v2.Resize(view.resize_to, antialias=True), v2.Lambda(crop)]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(view.mean), list(view.std))]
    return v2.Compose(ops)


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Center crop with offsets rounded down, as in the DALI view (v2.CenterCrop rounds half to
    even, one pixel off DALI whenever the margin is odd)."""
    height, width = image.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return image[..., top : top + size, left : left + size]


class _SampleDataset(Dataset[_Item]):
    """Items are (row, seed) pairs; returns (image or None, row, problem or None)."""

    def __init__(self, shards: ShardSet, view: View) -> None:
        self.shards = shards
        self.transform = build_transform(view)

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, item: tuple[int, int]) -> _Item:
        row, seed = item
        image = checked_decode(self.shards.read_image(row))
        if isinstance(image, str):
            return None, row, image
        # The transforms draw from the CPU generator only. `torch.manual_seed` would also queue a
        # CUDA seeding with a formatted stack trace: ~0.3 ms a sample, half a JPEG decode.
        torch.default_generator.manual_seed(seed)
        return self.transform(image), row, None


def _collate(items: list[_Item]) -> tuple[torch.Tensor | None, np.ndarray, list[tuple[int, str]]]:
    """Stack the readable images (in shared memory, as `default_collate` does); list the others."""
    good = [(image, row) for image, row, problem in items if problem is None]
    rejects = [(row, problem) for _, row, problem in items if problem is not None]
    images = default_collate([image for image, _ in good]) if good else None
    return images, np.array([row for _, row in good], dtype=np.int64), rejects


class _EpochItems(Sampler[list[tuple[int, int]]]):
    """The batch sampler: the (row, seed) items of the current epoch's batches, replaced per epoch."""

    def __init__(self) -> None:
        self.items: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class TorchRunner:
    """One loader's DataLoader, its workers forked once and kept (persistent) across epochs
    (the `Runner` of backend `torch`; `workers=0` decodes in this process)."""

    def __init__(
        self,
        shards: ShardSet,
        view: View,
        *,
        batch_size: int,
        workers: int,
        device: torch.device,
    ) -> None:
        del batch_size  # the batches come whole from the loader
        self._epoch = _EpochItems()
        self._dataset = _SampleDataset(shards, view)
        self._loader = DataLoader(
            self._dataset,
            batch_sampler=self._epoch,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
            prefetch_factor=4
            if workers
            else None,  # 2 (the default) ran 9% slower in `ns bench train`
            persistent_workers=workers > 0,
        )

    @property
    def bad_rows(self) -> Mapping[int, str]:
        """Always empty: each read decodes the whole image, which finds a bad one again."""
        return {}

    def batches(
        self,
        batches: list[np.ndarray],
        first: int,
        seeds: EpochSeeds,
        spares: Spares | None = None,
    ) -> Iterator[Decoded]:
        """Decode batches `first`, `first + 1`, … of `batches`, each sample's transforms seeded by
        its place (`seeds`); with `spares`, a batch that lost samples is topped up with stand-ins
        (decoded here: rare)."""
        self._epoch.items = [
            [
                (row, seeds.sample_seed(number, position))
                for position, row in enumerate(rows.tolist())
            ]
            for number, rows in enumerate(batches[first:], start=first)
        ]
        # Workers are forked here. Freezing the GC keeps a worker from collecting inherited
        # garbage: a DALI pipeline destroyed in a fork waits forever for its parent's threads.
        gc.freeze()
        try:
            results = iter(self._loader)
        finally:
            gc.unfreeze()
        for number, (images, rows, rejects) in enumerate(results, start=first):
            if rejects and spares is not None:
                wanted = len(batches[number])
                seed = seeds.sample_seed(number, wanted)  # past the batch's own seeds
                images, rows = self._top_up(images, rows, wanted, spares(number), seed)
            yield Decoded(number, images, rows, rejects)

    def _top_up(
        self,
        images: torch.Tensor | None,
        rows: np.ndarray,
        wanted: int,
        spares: Iterator[int],
        seed: int,
    ) -> tuple[torch.Tensor | None, np.ndarray]:
        """Add readable spare rows to a batch until it holds `wanted` samples (or spares run out)."""
        added: list[tuple[torch.Tensor, int]] = []
        for row in spares:
            if len(rows) + len(added) == wanted:
                break
            with torch.random.fork_rng(devices=[]):  # the caller's RNG stays untouched
                image, _, problem = self._dataset[(row, seed + len(added))]
            if problem is None:
                assert image is not None
                added.append((image, row))
        if not added:
            return images, rows
        extra = torch.stack([image for image, _ in added])
        rows = np.concatenate([rows, np.array([row for _, row in added], dtype=np.int64)])
        return (extra if images is None else torch.cat([images, extra])), rows
