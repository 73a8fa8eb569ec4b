"""What a loader backend hands the loader for each batch of the epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch


class Decoded(NamedTuple):
    """Batch `number` of the epoch: its images (None when none was readable), their table rows,
    and the (row, reason) of each sample left out because it is not a readable image."""

    number: int
    images: torch.Tensor | None
    rows: np.ndarray
    rejects: list[tuple[int, str]]


Spares = Callable[[int], Iterator[int]]
"""Rows, in order, that may stand in for the unreadable samples of batch `number` (drop_last)."""
