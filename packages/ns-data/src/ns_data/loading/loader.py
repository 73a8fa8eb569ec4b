"""One loader API over three backends: DALI on the GPU, DALI on the CPU, plain PyTorch.

    loader = ImageLoader(ShardSet("shards/train"), View(image_size=224, train=True), batch_size=64)
    for batch in loader:            # Batch(images, labels, sample_ids), one epoch
        ...
    state = loader.state_dict()     # resume later at the same sample

The order of samples (rank split, selection-plan copies, shuffling) is computed here from
(seed, epoch), and every augmentation draw from (seed, rank, epoch) (`draws.EpochSeeds`),
identically for every backend; backends (`decoded.Runner`s, listed in `BACKENDS`) only turn bytes
into tensors. Iterating continues from where the loader stands: after a full epoch that is the
next epoch, after a break or `load_state_dict` the next batch of the current one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch

from ns_data.cpus import cores_per_process
from ns_data.errors import DataError
from ns_data.loading.dali.runner import DaliCpuRunner, DaliGpuRunner
from ns_data.loading.decoded import Decoded, Runner, Spares
from ns_data.loading.draws import EpochSeeds
from ns_data.loading.sampling import batches_per_epoch, epoch_order, rank_bounds
from ns_data.loading.torch_backend import TorchRunner
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet

Backend = Literal["auto", "dali-gpu", "dali-cpu", "torch"]
OnError = Literal["skip", "raise"]
LoaderState = dict[str, int]


@dataclass(frozen=True, slots=True)
class Batch:
    """Images (N,3,H,W float, normalized) and class labels (-1 if unlabeled) on the loader's
    device; global sample ids on the host, where the stores they index live (reading them back
    from a GPU would wait for it every step)."""

    images: torch.Tensor
    labels: torch.Tensor
    sample_ids: torch.Tensor


class BackendSpec(NamedTuple):
    """A loader backend: its runner and what it needs to run."""

    runner: type[Runner]
    needs: str | None = None
    """A module it imports that may be missing (None: it always runs)."""
    install: str = ""
    """What to install when `needs` is missing."""
    cuda: bool = False
    """Runs only with a CUDA device."""


BACKENDS: dict[str, BackendSpec] = {
    "dali-gpu": BackendSpec(DaliGpuRunner, "nvidia.dali", "nvidia-dali-cuda130", cuda=True),
    "dali-cpu": BackendSpec(DaliCpuRunner, "nvidia.dali", "nvidia-dali-cuda130"),
    "torch": BackendSpec(TorchRunner),
}
"""Every backend by name; `auto` picks the first that runs here, so the fastest come first."""


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def dali_available() -> bool:
    """True when `nvidia.dali` can be imported."""
    return _importable("nvidia.dali")


def _unusable(name: str, device: torch.device) -> str | None:
    """Why backend `name` cannot run on `device` here, as the fix to tell; None when it can."""
    spec = BACKENDS[name]
    if spec.needs is not None and not _importable(spec.needs):
        fallback = next(n for n, s in BACKENDS.items() if s.needs is None and not s.cuda)
        return f"backend {name!r} needs {spec.install}: install it or use {fallback!r}"
    if spec.cuda and device.type != "cuda":
        near = " or ".join(
            repr(n) for n, s in BACKENDS.items() if s.needs == spec.needs and not s.cuda
        )
        return f"backend {name!r} needs a CUDA device; use {near} or 'auto'"
    return None


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """`auto`: the first of `BACKENDS` that runs on `device` here (DALI on the GPU for CUDA
    devices, DALI on the CPU otherwise, PyTorch without DALI); a named one is checked."""
    if backend == "auto":
        return next(name for name in BACKENDS if _unusable(name, device) is None)
    if backend not in BACKENDS:
        *most, last = ["auto", *BACKENDS]
        raise DataError(f"unknown loader backend {backend!r}: use {', '.join(most)} or {last}")
    problem = _unusable(backend, device)
    if problem is not None:
        raise DataError(problem)
    return backend


class ImageLoader:
    """Batches of one view of a shard set for one rank; an iteration is (the rest of) one epoch.

    Args:
        shards: the shard set to read.
        view: what is done to each image (train or eval view).
        batch_size: samples per batch on this rank.
        shuffle: permute the rows each epoch by (seed, epoch).
        drop_last: drop the last partial batch and keep every batch full: an unreadable sample is
            replaced by the next readable one of the epoch (wrapping around), so every rank
            yields `len(loader)` batches of `batch_size` (DDP never waits at epoch end).
        seed: seeds the order and the augmentation.
        rank, world_size: this rank's contiguous part of the rows.
        copies: selection plan, a copy count per row (0 drops the row, 2 reads it twice per epoch).
        backend: `auto`, `dali-gpu`, `dali-cpu` or `torch` (see `BACKENDS`, `resolve_backend`).
        device: where the batches go (DALI on the GPU decodes there).
        workers: DataLoader processes (torch), single-threaded DALI pipelines (dali-cpu) or DALI
            threads (dali-gpu); default: this process's share of the cores it may use (its
            affinity over the torchrun ranks on this machine), at most 8. Outputs do not depend on it.
        on_error: `skip` leaves unreadable images out of their batch and counts them in
            `skipped`; `raise` raises DataError naming the sample.
    """

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
        on_error: OnError = "skip",
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        if copies is not None and len(copies) != shards.total_samples:
            raise DataError(
                f"the selection plan has {len(copies)} entries but {shards.directory} has "
                f"{shards.total_samples} samples: it was made for another shard set"
            )
        if on_error not in ("skip", "raise"):
            raise DataError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
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
        self.workers = workers if workers is not None else min(cores_per_process(), 8)
        self.on_error = on_error
        self.epoch = 0
        self.skipped = 0
        """Unreadable samples left out so far (each time one is met)."""
        self._next_batch = 0
        self._labels = shards.labels
        self._rows = self._rank_rows(copies)
        self._runner: Runner | None = None

    def _rank_rows(self, copies: np.ndarray | None) -> np.ndarray:
        """The table rows of this rank's part that the opened set holds, repeated by `copies`."""
        shards = self.shards
        start, stop = rank_bounds(shards.total_samples, self.rank, self.world_size)
        ids = shards.table.sample_id
        rows = np.arange(*np.searchsorted(ids, [start, stop]), dtype=np.int64)
        if self.drop_last and len(rows) != stop - start:
            raise DataError(
                f"{shards.directory} was opened without some of rank {self.rank}'s samples: open "
                f"it whole or with ShardSet.for_rank(path, {self.rank}, {self.world_size})"
            )
        return rows if copies is None else np.repeat(rows, copies[ids[rows]].astype(np.int64))

    @property
    def bad_rows(self) -> Mapping[int, str]:
        """Rows the backend failed to decode although their header looked sound, with the reason
        (DALI finds them when a batch fails; they are then kept out of its later batches)."""
        return {} if self._runner is None else self._runner.bad_rows

    def __len__(self) -> int:
        """Batches per epoch on this rank (equal on every rank when `drop_last`)."""
        if self.drop_last:
            return batches_per_epoch(
                self.shards.total_samples,
                self.copies,
                batch_size=self.batch_size,
                world_size=self.world_size,
                drop_last=True,
            )
        return -(-len(self._rows) // self.batch_size)

    def _epoch_batches(self) -> tuple[list[np.ndarray], Spares | None]:
        """This epoch's batches, and (drop_last) where stand-ins for unreadable samples come from."""
        order = epoch_order(self._rows, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        size = self.batch_size
        batches = [order[i * size : (i + 1) * size] for i in range(len(self))]
        if not self.drop_last:
            return batches, None

        def spares(number: int) -> Iterator[int]:
            """The rows after batch `number` in epoch order, wrapping around to the first."""
            cut = (number + 1) * size
            yield from order[cut:].tolist()
            yield from order[: number * size].tolist()

        return batches, spares

    def __iter__(self) -> Iterator[Batch]:
        for decoded in self._decode(*self._epoch_batches(), self._next_batch):
            self._reject(decoded.rejects)
            self._next_batch = decoded.number + 1
            if decoded.images is not None:
                yield self._batch(decoded.images, decoded.rows)
        self.epoch += 1
        self._next_batch = 0

    def _decode(
        self, batches: list[np.ndarray], spares: Spares | None, first: int
    ) -> Iterator[Decoded]:
        if self._runner is None:
            self._runner = BACKENDS[self.backend].runner(
                self.shards,
                self.view,
                batch_size=self.batch_size,
                workers=self.workers,
                device=self.device,
            )
        seeds = EpochSeeds(self.seed, self.rank, self.epoch, self.batch_size)
        return self._runner.batches(batches, first, seeds, spares)

    def _reject(self, rejects: list[tuple[int, str]]) -> None:
        for row, reason in rejects:
            if self.on_error == "raise":
                sample = int(self.shards.table.sample_id[row])
                shard = self.shards.manifest.shards[int(self.shards.table.shard[row])].tar
                raise DataError(
                    f"sample {sample} in {self.shards.directory / shard} is not a readable image "
                    f"({reason}): re-shard without it, or pass on_error='skip'"
                )
            self.skipped += 1

    def _batch(self, images: torch.Tensor, rows: np.ndarray) -> Batch:
        if images.shape[-1] == 3 and images.shape[1] != 3:  # DALI's HWC (channels-last) output
            images = images.permute(0, 3, 1, 2)
        if self.view.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.view.bfloat16:
            images = images.to(torch.bfloat16)
        return Batch(
            images=images.to(self.device, non_blocking=True),
            labels=torch.from_numpy(self._labels[rows]).to(self.device, non_blocking=True),
            sample_ids=torch.from_numpy(self.shards.table.sample_id[rows]),
        )

    def state_dict(self) -> LoaderState:
        """Where the loader stands: epoch, batches of it already yielded, seed."""
        return {"epoch": self.epoch, "batch": self._next_batch, "seed": self.seed}

    def load_state_dict(self, state: LoaderState) -> None:
        """Continue from `state_dict()`: the next iteration resumes that epoch at that batch.

        Every backend draws each batch's augmentation from (seed, rank, epoch, batch number), so
        the resumed epoch gives the very batches the interrupted one would have given.
        """
        if state["seed"] != self.seed:
            raise DataError(
                f"loader state was saved with seed {state['seed']}, this loader has {self.seed}: "
                "build the loader with the saved seed"
            )
        self.epoch = int(state["epoch"])
        self._next_batch = int(state["batch"])
