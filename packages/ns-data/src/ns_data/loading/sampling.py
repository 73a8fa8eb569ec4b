"""Which rows a rank reads in which order: the rank split, the epoch order, the epoch length.

Everything derives from (seed, epoch), so any rank can compute any other rank's epoch length
without talking to it, and a resumed loader continues at the same sample.
"""

from __future__ import annotations

import numpy as np

from ns_data.errors import DataError


def rank_bounds(num_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank `rank`'s part [start, stop) of the rows: contiguous, disjoint parts covering every row
    exactly once (as DALI's shard_id does)."""
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is outside world size {world_size}")
    bounds = np.linspace(0, num_rows, world_size + 1).round().astype(np.int64)
    return int(bounds[rank]), int(bounds[rank + 1])


def epoch_order(rows: np.ndarray, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The rows of one epoch, permuted by (seed, epoch) when shuffling."""
    if not shuffle:
        return rows
    return np.random.default_rng([seed, epoch]).permutation(rows)


def batches_per_epoch(
    num_rows: int,
    copies: np.ndarray | None,
    *,
    batch_size: int,
    world_size: int,
    drop_last: bool,
) -> int:
    """Batches every rank yields per epoch: the least over ranks, so no rank waits at epoch end."""
    counts = []
    for rank in range(world_size):
        start, stop = rank_bounds(num_rows, rank, world_size)
        counts.append(stop - start if copies is None else int(copies[start:stop].sum()))
    fewest = min(counts)
    return fewest // batch_size if drop_last else -(-fewest // batch_size)
