"""Runs `dali_pipelines.view_pipeline` for an `ImageLoader`: feeds it our batches, keeps its state.

The pipeline is built once per loader with checkpointing on. After each `run()` the runner keeps
`pipe.checkpoint()` (~0.3 ms): DALI's checkpoint describes the state after the last output handed
out, not after its prefetch, so it is exactly what a resumed loader must restore. With the
dynamic executor DALI never reuses an output buffer, so outputs reach torch through DLPack without
a copy (GPU outputs stay on the GPU; torch passes its stream and DALI orders the work on it).

Bad images are kept out of DALI by `image_check.structure_problem` in the feed. Should a batch
still fail to decode, the runner decodes its samples one by one to find the culprits, rebuilds the
pipeline from the checkpoint kept before that batch and feeds the batch again without them.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ns_data.decoded import Decoded, Spares
from ns_data.image_check import checked_decode
from ns_data.image_structure import structure_problem

if TYPE_CHECKING:
    from ns_data.loader import ImageLoader


@dataclass(slots=True)
class _Fed:
    """What one external-source call sent: batch `number`, or a wholly unreadable one (skipped)."""

    number: int
    rejects: list[tuple[int, str]]
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    skipped: bool = False


class _Feed:
    """The external source: encoded bytes and rows of the next batch that has a readable image."""

    def __init__(
        self, loader: ImageLoader, batches: list[np.ndarray], first: int, spares: Spares | None
    ) -> None:
        self.loader = loader
        self.pending = iter(enumerate(batches[first:], start=first))
        self.spares = spares
        self.in_flight: deque[_Fed] = deque()

    def _problem(self, row: int, data: bytes) -> str | None:
        return self.loader.bad_rows.get(row) or structure_problem(data)

    def __call__(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        read = self.loader.shards.read_image
        for number, rows in self.pending:  # ending the loop ends DALI's epoch
            encoded, kept, rejects = [], [], []
            for row in rows.tolist():
                data = read(row)
                problem = self._problem(row, data)
                if problem is None:
                    encoded.append(np.frombuffer(data, dtype=np.uint8))
                    kept.append(row)
                else:
                    rejects.append((row, problem))
            if rejects and self.spares is not None:  # stand-ins keep the batch full
                for row in self.spares(number):
                    if len(kept) == len(rows):
                        break
                    data = read(row)
                    if self._problem(row, data) is None:
                        encoded.append(np.frombuffer(data, dtype=np.uint8))
                        kept.append(row)
            if kept:
                self.in_flight.append(_Fed(number, rejects, np.array(kept, dtype=np.int64)))
                return encoded, [np.array([r], dtype=np.int64) for r in kept]
            self.in_flight.append(_Fed(number, rejects, skipped=True))
        raise StopIteration


class DaliRunner:
    """One loader's DALI pipeline, built lazily, restored from `checkpoint` when there is one."""

    def __init__(self, loader: ImageLoader, checkpoint: bytes | None = None) -> None:
        self.loader = loader
        self.checkpoint = checkpoint
        self._pipe: Any = None
        self._feed: _Feed | None = None

    def _build(self, feed: _Feed) -> None:
        from ns_data.dali_pipelines import view_pipeline

        loader = self.loader
        gpu = loader.backend == "dali-gpu"
        index = loader.device.index
        # Recorded, not shown: DALI warns that our source is not checkpointed (we restart it
        # ourselves on restore) and, forcing its warnings on, that its own auto_aug uses
        # deprecated aliases. Any other warning is passed on below.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._pipe = view_pipeline(
                lambda: self._feed(),  # type: ignore[misc]
                loader.view,
                gpu,
                batch_size=loader.batch_size,
                num_threads=max(1, loader.workers),
                device_id=(torch.cuda.current_device() if index is None else index)
                if gpu
                else None,
                seed=int(np.random.default_rng([loader.seed, loader.rank]).integers(2**31)),
                prefetch_queue_depth=2,
                exec_dynamic=True,
                enable_checkpointing=True,
                checkpoint=self.checkpoint,
            )
            self._feed = feed
            self._pipe.build()
        for warning in caught:
            if not _dali_notice(warning):
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )

    def state(self) -> bytes | None:
        """DALI's checkpoint after the last batch handed out (None before the first)."""
        return self.checkpoint

    def batches(
        self, batches: list[np.ndarray], first: int, spares: Spares | None = None
    ) -> Iterator[Decoded]:
        """Decode batch `first`, `first + 1`, … of `batches` (`spares`: keep them full)."""
        feed = _Feed(self.loader, batches, first, spares)
        if self._pipe is None:
            self._build(feed)
        self._feed = feed
        finished = False
        try:
            while True:
                try:
                    images, rows = self._pipe.run()
                except StopIteration:
                    break
                except RuntimeError as err:
                    feed = self._recover(batches, spares, feed, err)
                    continue
                self.checkpoint = self._pipe.checkpoint()
                while feed.in_flight[0].skipped:
                    yield self._skipped(feed.in_flight.popleft())
                fed = feed.in_flight.popleft()
                rows = np.array(rows.as_tensor()).reshape(-1)
                yield Decoded(fed.number, _to_torch(images), rows, fed.rejects)
            yield from (self._skipped(fed) for fed in feed.in_flight)
            finished = True
        finally:
            if finished:
                self._pipe.reset()
            else:  # left mid-epoch with outputs queued: rebuild from `checkpoint` next time
                self._pipe = None

    @staticmethod
    def _skipped(fed: _Fed) -> Decoded:
        return Decoded(fed.number, None, fed.rows, fed.rejects)

    def _recover(
        self, batches: list[np.ndarray], spares: Spares | None, feed: _Feed, err: RuntimeError
    ) -> _Feed:
        """Find the samples that failed DALI's decode, then rebuild and feed from that batch on."""
        failed = next(fed for fed in feed.in_flight if not fed.skipped)
        read = self.loader.shards.read_image
        results = {row: checked_decode(read(row)) for row in failed.rows.tolist()}
        culprits = {row: result for row, result in results.items() if isinstance(result, str)}
        if not culprits:
            raise err  # not a data problem: DALI's own error is the useful one
        self.loader.bad_rows.update(culprits)
        retry = _Feed(self.loader, batches, feed.in_flight[0].number, spares)
        self._pipe = None
        self._build(retry)
        return retry


def _dali_notice(warning: warnings.WarningMessage) -> bool:
    """A warning building our pipeline always gives: a deprecated alias inside DALI, or the
    external source not being checkpointed."""
    text = str(warning.message)
    deprecated = (
        issubclass(warning.category, DeprecationWarning) and "nvidia/dali" in warning.filename
    )
    return deprecated or "Checkpointing enabled in a pipeline" in text


def _to_torch(images: Any) -> torch.Tensor:
    """Zero-copy view of a dense DALI output (the dynamic executor never reuses it)."""
    return torch.from_dlpack(images.as_tensor())
