"""Runs `dali_pipelines.view_pipeline` for an `ImageLoader`: builds it once, feeds it batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ns_data.loader import ImageLoader


class _Feed:
    """The external source: hands DALI the encoded bytes and rows of the next batch."""

    def __init__(self, loader: ImageLoader) -> None:
        self.loader = loader
        self.batches: Iterator[np.ndarray] = iter(())

    def __call__(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        rows = next(self.batches)  # StopIteration ends DALI's epoch
        shards = self.loader.shards
        encoded = [np.frombuffer(shards.read_image(int(r)), dtype=np.uint8) for r in rows]
        return encoded, [np.array([r], dtype=np.int64) for r in rows]


def _build(loader: ImageLoader) -> tuple[object, _Feed]:
    from ns_data.dali_pipelines import view_pipeline

    gpu = loader.backend == "dali-gpu"
    feed = _Feed(loader)
    pipe = view_pipeline(
        feed,
        loader.view,
        gpu,
        batch_size=loader.batch_size,
        num_threads=max(1, loader.workers),
        device_id=(loader.device.index or 0) if gpu else None,
        seed=int(np.random.default_rng([loader.seed, loader.rank]).integers(2**31)),
        prefetch_queue_depth=2,
        exec_dynamic=True,
    )
    pipe.build()
    return pipe, feed


def _to_torch(tensor_list: object) -> torch.Tensor:
    dense = tensor_list.as_tensor()  # type: ignore[attr-defined]
    return torch.from_dlpack(dense) if hasattr(dense, "__dlpack__") else torch.from_numpy(np.array(dense))


def dali_batches(loader: ImageLoader, batches: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """Yield (images, rows) for each batch of rows through the loader's DALI pipeline."""
    if loader._pipeline is None:
        loader._pipeline = _build(loader)
    pipe, feed = loader._pipeline
    feed.batches = iter(batches)
    try:
        while True:
            try:
                images, rows = pipe.run()
            except StopIteration:
                break
            yield _to_torch(images).clone(), np.array(rows.as_tensor()).reshape(-1)
    finally:
        pipe.reset()
