"""The loader settings a user chooses, shared by training, labeling and evaluation.

    loader = LoaderConfig(backend="torch", workers=0).build(shards, view, batch_size=64)

Everything else `ImageLoader` takes (batch size, order, rank split, device, selection plan) is
the job's business, not a setting: the job passes it to `build`. Light to import (no torch), so
configs that hold one load fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ns_data.errors import DataError

if TYPE_CHECKING:
    import torch

    from ns_data.loading.loader import ImageLoader
    from ns_data.loading.views import View
    from ns_data.shards.reader import ShardSet

Backend = Literal["auto", "dali-gpu", "dali-cpu", "torch"]
"""The same choices as `ns_data.loading.loader.Backend` (spelled here so no torch is imported)."""
BACKENDS: tuple[str, ...] = ("auto", "dali-gpu", "dali-cpu", "torch")


@dataclass(kw_only=True, slots=True)
class LoaderConfig:
    """Which loader backend reads the images, and with how many workers. Outputs do not depend
    on `workers`; backends give the same batches up to decoder rounding."""

    backend: Backend = "auto"
    """auto (DALI on the GPU for CUDA devices, DALI on the CPU otherwise, PyTorch without DALI),
    dali-gpu, dali-cpu or torch."""
    workers: int | None = None
    """DataLoader processes (torch), DALI pipelines (dali-cpu) or DALI threads (dali-gpu);
    None: this process's share of the cores it may use, at most 8."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise DataError(
                f"loader.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 0):
            raise DataError(f"loader.workers must be >= 0 or absent, got {self.workers}")

    def build(
        self,
        shards: ShardSet,
        view: View,
        *,
        batch_size: int,
        device: torch.device | str = "cpu",
        **job: Any,
    ) -> ImageLoader:
        """An `ImageLoader` with these settings; `job` holds the rest of its keyword arguments
        (shuffle, drop_last, seed, rank, world_size, copies, on_error)."""
        from ns_data.loading.loader import ImageLoader

        return ImageLoader(
            shards,
            view,
            batch_size=batch_size,
            backend=self.backend,
            device=device,
            workers=self.workers,
            **job,
        )
