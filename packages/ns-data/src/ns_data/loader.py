"""One loader API over three backends: DALI on the GPU, DALI on the CPU, plain PyTorch.

    loader = ImageLoader(ShardSet("shards/train"), View(image_size=224, train=True), batch_size=64)
    for batch in loader:            # Batch(images, labels, sample_ids), one epoch
        ...
    state = loader.state_dict()     # resume later at the same sample

The order of samples (rank split, selection-plan copies, shuffling) is computed here from
(seed, epoch), identically for every backend; backends only turn bytes into tensors.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ns_data.errors import DataError
from ns_data.sampling import batches_per_epoch, epoch_order, expand_copies, rank_rows
from ns_data.shard_set import ShardSet
from ns_data.views import View

Backend = Literal["auto", "dali-gpu", "dali-cpu", "torch"]


@dataclass(frozen=True, slots=True)
class Batch:
    """Images (N,3,H,W float, normalized), class labels (-1 when unlabeled) and global sample ids."""

    images: torch.Tensor
    labels: torch.Tensor
    sample_ids: torch.Tensor


def dali_available() -> bool:
    """True when `nvidia.dali` can be imported."""
    return importlib.util.find_spec("nvidia.dali") is not None


def resolve_backend(backend: Backend, device: torch.device) -> Literal["dali-gpu", "dali-cpu", "torch"]:
    """`auto`: DALI on the GPU for CUDA devices, DALI on the CPU otherwise, PyTorch without DALI."""
    if backend == "auto":
        if not dali_available():
            return "torch"
        return "dali-gpu" if device.type == "cuda" else "dali-cpu"
    if backend.startswith("dali") and not dali_available():
        raise DataError(f"backend {backend!r} needs nvidia-dali-cuda130: install it or use 'torch'")
    if backend == "dali-gpu" and device.type != "cuda":
        raise DataError("backend 'dali-gpu' needs a CUDA device; use 'dali-cpu' or 'auto'")
    if backend not in ("dali-gpu", "dali-cpu", "torch"):
        raise DataError(f"unknown loader backend {backend!r}: use auto, dali-gpu, dali-cpu or torch")
    return backend  # type: ignore[return-value]


class ImageLoader:
    """Batches of one view of a shard set for one rank; an iteration is one epoch."""

    def __init__(
        self,
        shards: ShardSet,
        view: View,
        *,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        copies: np.ndarray | None = None,
        backend: Backend = "auto",
        device: torch.device | str = "cpu",
        workers: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        if copies is not None and len(copies) != len(shards):
            raise DataError(
                f"the selection plan has {len(copies)} entries but {shards.directory} has "
                f"{len(shards)} samples: it was made for another shard set"
            )
        self.shards = shards
        self.view = view
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.copies = copies
        self.device = torch.device(device)
        self.backend = resolve_backend(backend, self.device)
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
        self.epoch = 0
        self._start_batch = 0
        self._labels = shards.labels()
        self._rows = expand_copies(rank_rows(len(shards), rank, world_size), copies)
        self._pipeline: Any = None

    def __len__(self) -> int:
        """Batches per epoch on this rank (equal on every rank when `drop_last`)."""
        if self.drop_last:
            return batches_per_epoch(
                len(self.shards),
                self.copies,
                batch_size=self.batch_size,
                world_size=self.world_size,
                drop_last=True,
            )
        return -(-len(self._rows) // self.batch_size)

    def _epoch_batches(self) -> list[np.ndarray]:
        order = epoch_order(self._rows, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        count = len(self)
        return [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(count)]

    def __iter__(self) -> Iterator[Batch]:
        batches = self._epoch_batches()[self._start_batch :]
        first = self._start_batch
        self._start_batch = 0
        for number, (images, rows) in enumerate(self._decode(batches, first), start=first):
            self._consumed = number + 1
            yield self._batch(images, rows)
        self.epoch += 1
        self._consumed = 0

    def _decode(self, batches: list[np.ndarray], first: int) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        if self.backend == "torch":
            from ns_data.torch_pipeline import torch_batches

            base = np.random.default_rng([self.seed, self.rank, self.epoch]).integers(2**62)
            seeds = [
                base + (first + i) * self.batch_size + np.arange(len(b)) for i, b in enumerate(batches)
            ]
            yield from torch_batches(self.shards, self.view, batches, seeds, self.workers)
        else:
            from ns_data.dali_runner import dali_batches

            yield from dali_batches(self, batches)

    def _batch(self, images: torch.Tensor, rows: np.ndarray) -> Batch:
        if self.view.channels_last and images.shape[-1] == 3:
            images = images.permute(0, 3, 1, 2)
        if self.view.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.view.bfloat16:
            images = images.to(torch.bfloat16)
        return Batch(
            images=images.to(self.device, non_blocking=True),
            labels=torch.from_numpy(self._labels[rows]).to(self.device),
            sample_ids=torch.from_numpy(self.shards.table.sample_id[rows]).to(self.device),
        )

    def state_dict(self) -> dict[str, int]:
        """Where the loader stands: the epoch and the batches of it already yielded."""
        return {"epoch": self.epoch, "batch": getattr(self, "_consumed", 0), "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from `state_dict()`: the next iteration resumes that epoch at that batch."""
        if state["seed"] != self.seed:
            raise DataError(f"loader state was saved with seed {state['seed']}, this loader has {self.seed}")
        self.epoch = state["epoch"]
        self._start_batch = state["batch"]
