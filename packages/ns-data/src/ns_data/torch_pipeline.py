"""The plain PyTorch backend (torchvision v2 in DataLoader workers) for machines without DALI.

Each sample's augmentation is seeded from (seed, epoch, position in epoch), so the output does not
depend on the number of workers and a resumed epoch draws the same augmentations.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from ns_data.shard_set import ShardSet
from ns_data.views import View


def build_transform(view: View) -> v2.Transform:
    """The torchvision v2 ops that match `dali_pipelines.view_pipeline` for `view`."""
    size = [view.image_size, view.image_size]
    if view.train:
        ops: list[v2.Transform] = [
            v2.RandomResizedCrop(size, scale=view.scale, ratio=(3 / 4, 4 / 3), antialias=True)
        ]
        if view.randaugment_n > 0:
            ops.append(
                v2.RandAugment(
                    num_ops=view.randaugment_n,
                    magnitude=view.randaugment_m,
                    num_magnitude_bins=31,
                    fill=128,
                )
            )
        if view.flip:
            ops.append(v2.RandomHorizontalFlip())
    else:
        ops = [v2.Resize(view.resize_to, antialias=True), v2.CenterCrop(size)]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(view.mean), list(view.std))]
    return v2.Compose(ops)


class _SampleDataset(Dataset[tuple[torch.Tensor, int]]):
    """Items are (row, seed) pairs; returns the transformed image and the row."""

    def __init__(self, shards: ShardSet, view: View) -> None:
        self.shards = shards
        self.transform = build_transform(view)

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        row, seed = item
        data = torch.frombuffer(bytearray(self.shards.read_image(row)), dtype=torch.uint8)
        image = decode_image(data, mode=ImageReadMode.RGB)
        torch.manual_seed(seed)
        return self.transform(image), row


def torch_batches(
    shards: ShardSet, view: View, batches: list[np.ndarray], seeds: list[np.ndarray], workers: int
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """Yield (images NCHW float32, rows) for each batch of rows, decoding in `workers` processes."""
    items = [list(zip(b.tolist(), s.tolist(), strict=True)) for b, s in zip(batches, seeds, strict=True)]
    loader = DataLoader(
        _SampleDataset(shards, view),
        batch_sampler=items,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    for images, rows in loader:
        yield images, rows.numpy()
