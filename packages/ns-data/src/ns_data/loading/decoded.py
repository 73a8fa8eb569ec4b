"""The seam between the loader and its backends: the `Runner` protocol and what it yields.

The loader decides which rows make each batch of the epoch (`sampling`) and every augmentation
draw (`draws.EpochSeeds`); a runner only turns those rows into tensors. A backend is one module
with a `Runner` class plus its line in `loader.BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from ns_data.loading.draws import EpochSeeds
    from ns_data.loading.views import View
    from ns_data.shards.reader import ShardSet


class Decoded(NamedTuple):
    """Batch `number` of the epoch: its images (None when none was readable), their table rows,
    and the (row, reason) of each sample left out because it is not a readable image."""

    number: int
    images: torch.Tensor | None
    rows: np.ndarray
    rejects: list[tuple[int, str]]


Spares = Callable[[int], Iterator[int]]
"""Rows, in order, that may stand in for the unreadable samples of batch `number` (drop_last)."""


class Runner(Protocol):
    """A loader backend: decodes and augments batches of a shard set's rows, built on first use.

    Args:
        shards: the shard set whose rows the batches name.
        view: what is done to each image.
        batch_size: the loader's batch size (the largest batch).
        workers: processes or threads to decode with (the loader's `workers`).
        device: where the loader puts the batches (a GPU backend decodes there).
    """

    def __init__(
        self,
        shards: ShardSet,
        view: View,
        *,
        batch_size: int,
        workers: int,
        device: torch.device,
    ) -> None: ...

    @property
    def bad_rows(self) -> Mapping[int, str]:
        """Rows this runner found it cannot decode although their header looked sound, with the
        reason; they are left out of every later batch without being decoded again."""
        ...

    def batches(
        self,
        batches: list[np.ndarray],
        first: int,
        seeds: EpochSeeds,
        spares: Spares | None = None,
    ) -> Iterator[Decoded]:
        """Decode batches `first`, `first + 1`, … of `batches` (rows of the epoch), augmented with
        `seeds`; with `spares`, a batch that lost samples is topped up with stand-ins."""
        ...
