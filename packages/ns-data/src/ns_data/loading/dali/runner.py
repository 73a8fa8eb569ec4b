"""Runs `pipelines.view_pipeline` for an `ImageLoader`: feeds it our batches and draws.

On the CPU the runner keeps one single-threaded pipeline per worker (a lane) and hands batch `b`
to lane `b % lanes`: DALI's executor leaves its threads idle between the many small ops of
RandAugment, and independent pipelines fill those gaps (measured: 1.2× one pipeline with as many
threads). On the GPU one pipeline runs with `workers` threads. The pipelines draw nothing
(`loading.draws` does, per batch), so outputs do not depend on the lanes and a resumed epoch needs
no DALI state. With the dynamic executor DALI never reuses an output buffer, so outputs reach
torch through DLPack without a copy (GPU outputs stay on the GPU).

Bad images are kept out of DALI by a header check in the feed. Should a batch still fail to
decode, its lane decodes the samples one by one to find the culprits, rebuilds its pipeline and
feeds that batch again without them; the runner keeps them in `bad_rows`, out of later batches.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ns_data.images.check import checked_decode
from ns_data.images.structure import read_header
from ns_data.loading.decoded import Decoded, Spares
from ns_data.loading.draws import EpochSeeds, draw_batch
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet

_Numbered = list[tuple[int, np.ndarray]]
"""Batches with their number in the epoch."""


@dataclass(frozen=True, slots=True)
class _Setup:
    """What every lane of one runner decodes with."""

    shards: ShardSet
    view: View
    batch_size: int
    device_id: int | None
    """The GPU the pipelines run on; None on the CPU."""
    bad_rows: dict[int, str]
    """The runner's rows that failed DALI's decode (shared by its lanes, grown by them)."""


@dataclass(slots=True)
class _Fed:
    """What one external-source call sent: batch `number`, or a wholly unreadable one (skipped)."""

    number: int
    rejects: list[tuple[int, str]]
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    skipped: bool = False


class _Feed:
    """The external source: encoded bytes, rows and draws of the next batch with a readable image."""

    def __init__(
        self, setup: _Setup, batches: _Numbered, spares: Spares | None, seeds: EpochSeeds
    ) -> None:
        self.setup = setup
        self.pending = iter(batches)
        self.spares = spares
        self.seeds = seeds
        self.in_flight: deque[_Fed] = deque()

    def _read(self, row: int) -> tuple[bytes, tuple[int, int] | str]:
        data = self.setup.shards.read_image(row)
        known = self.setup.bad_rows.get(row)
        header = known or read_header(data)
        # DALI's decoders turn EXIF-rotated JPEGs upright, so the crop is drawn on that size.
        return data, header if isinstance(header, str) else header.upright_size

    def __call__(self) -> tuple[list[np.ndarray], ...]:
        for number, rows in self.pending:  # ending the loop ends DALI's epoch
            encoded, kept, sizes, rejects = [], [], [], []
            for row in rows.tolist():
                data, size = self._read(row)
                if isinstance(size, str):
                    rejects.append((row, size))
                    continue
                encoded.append(np.frombuffer(data, dtype=np.uint8))
                kept.append(row)
                sizes.append(size)
            if rejects and self.spares is not None:  # stand-ins keep the batch full
                for row in self.spares(number):
                    if len(kept) == len(rows):
                        break
                    data, size = self._read(row)
                    if not isinstance(size, str):
                        encoded.append(np.frombuffer(data, dtype=np.uint8))
                        kept.append(row)
                        sizes.append(size)
            if kept:
                self.in_flight.append(_Fed(number, rejects, np.array(kept, dtype=np.int64)))
                return self._outputs(number, encoded, kept, np.array(sizes))
            self.in_flight.append(_Fed(number, rejects, skipped=True))
        raise StopIteration

    def _outputs(
        self, number: int, encoded: list[np.ndarray], kept: list[int], sizes: np.ndarray
    ) -> tuple[list[np.ndarray], ...]:
        rows = [np.array([row], dtype=np.int64) for row in kept]
        view = self.setup.view
        if not view.train:
            return encoded, rows
        draws = draw_batch(view, sizes, self.seeds.batch_rng(number))
        crops = (list(draws.crop_anchor), list(draws.crop_shape), list(draws.mirror[:, None]))
        if not view.randaugment_n:
            return encoded, rows, *crops
        return encoded, rows, *crops, list(draws.ops), list(draws.signs)


class _Lane:
    """One pipeline and the batches it decodes; outputs wait here until their turn."""

    def __init__(self, setup: _Setup, threads: int) -> None:
        self.setup = setup
        self.threads = threads
        self.pipe: Any = None
        self.feed: _Feed | None = None
        self.batches: _Numbered = []
        self.ready: deque[Decoded] = deque()
        self.exhausted = False

    def start(self, batches: _Numbered, spares: Spares | None, seeds: EpochSeeds) -> None:
        """Feed `batches`, drawn from `seeds`, from now on (building the pipeline when there is
        none)."""
        self.batches = batches
        self.feed = _Feed(self.setup, batches, spares, seeds)
        self.ready.clear()
        self.exhausted = False
        if self.pipe is None:
            self._build()

    def take(self, number: int) -> Decoded:
        """Batch `number`, which must be this lane's next one."""
        assert self.feed is not None
        while True:
            if self.ready and self.ready[0].number == number:
                return self.ready.popleft()
            in_flight = self.feed.in_flight
            if in_flight and in_flight[0].skipped and in_flight[0].number == number:
                return _skipped(in_flight.popleft())
            if self.exhausted:
                raise RuntimeError(f"batch {number} never came out of its DALI pipeline")
            self._run()

    def finish(self) -> None:
        """End the epoch: let DALI see the end of the feed, then reset for the next one."""
        if not self.exhausted:
            try:
                self.pipe.run()
            except StopIteration:
                pass
            else:
                raise RuntimeError("a DALI pipeline gave more batches than it was fed")
        self.pipe.reset()

    def drop(self) -> None:
        """Left mid-epoch with outputs queued: build afresh next time."""
        self.pipe = None

    def _run(self) -> None:
        assert self.feed is not None
        try:
            images, rows = self.pipe.run()
        except StopIteration:
            self.exhausted = True
            return
        except RuntimeError as err:
            self._recover(err)
            return
        in_flight = self.feed.in_flight
        position = next(i for i, fed in enumerate(in_flight) if not fed.skipped)
        fed = in_flight[position]
        del in_flight[position]
        rows = np.array(rows.as_tensor()).reshape(-1)
        self.ready.append(Decoded(fed.number, _to_torch(images), rows, fed.rejects))

    def _recover(self, err: RuntimeError) -> None:
        """Find the samples that failed DALI's decode, then rebuild and feed from that batch on."""
        assert self.feed is not None
        failed = next(fed for fed in self.feed.in_flight if not fed.skipped)
        read = self.setup.shards.read_image
        results = {row: checked_decode(read(row)) for row in failed.rows.tolist()}
        culprits = {row: result for row, result in results.items() if isinstance(result, str)}
        if not culprits:  # images torchvision reads but DALI's decoders refuse (e.g. nvJPEG's)
            culprits = self._dali_refusals(failed.rows.tolist())
        if not culprits:
            raise err  # not a data problem: DALI's own error is the useful one
        self.setup.bad_rows.update(culprits)
        restart = self.feed.in_flight[0].number
        self.pipe = None
        kept = [(n, rows) for n, rows in self.batches if n >= restart]
        self.start(kept, self.feed.spares, self.feed.seeds)

    def _dali_refusals(self, rows: list[int]) -> dict[int, str]:
        """Decode each row alone with DALI's decoder on this lane's device; the ones it refuses,
        with DALI's reason (a probe pipeline, rebuilt after each refusal)."""
        from ns_data.loading.dali.pipelines import decode_probe

        setup, refused = self.setup, {}
        queue: deque[np.ndarray] = deque()
        probe = None
        for row in rows:
            if probe is None:
                probe = decode_probe(
                    lambda: [queue.popleft()],
                    setup.device_id is not None,
                    batch_size=1,
                    num_threads=1,
                    device_id=setup.device_id,
                    prefetch_queue_depth=1,
                    exec_dynamic=True,
                )
                probe.build()
            queue.append(np.frombuffer(setup.shards.read_image(row), dtype=np.uint8))
            try:
                probe.run()
            except RuntimeError as err:
                reason = (
                    str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                )
                refused[row] = f"DALI cannot decode it ({reason[:160]})"
                probe = None
        return refused

    def _build(self) -> None:
        from ns_data.loading.dali.pipelines import view_pipeline

        setup = self.setup
        # Recorded, not shown: DALI, forcing its warnings on, warns that its own auto_aug uses
        # deprecated aliases. Any other warning is passed on below.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.pipe = view_pipeline(
                lambda: self.feed(),  # type: ignore[misc]  # start() sets it before DALI calls
                setup.view,
                setup.device_id is not None,
                batch_size=setup.batch_size,
                num_threads=self.threads,
                device_id=setup.device_id,
                prefetch_queue_depth=2,
                exec_dynamic=True,
            )
            self.pipe.build()
        for warning in caught:
            if not _dali_notice(warning):
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )


class DaliRunner:
    """One loader's DALI pipelines (lanes), built on first use: the `Runner` of the DALI
    backends (`DaliGpuRunner`, `DaliCpuRunner`)."""

    gpu: ClassVar[bool]
    """Decode and augment on the loader's CUDA device (else on the CPU)."""

    def __init__(
        self,
        shards: ShardSet,
        view: View,
        *,
        batch_size: int,
        workers: int,
        device: torch.device,
    ) -> None:
        workers = max(1, workers)
        device_id = None
        if self.gpu:
            device_id = torch.cuda.current_device() if device.index is None else device.index
        self._bad_rows: dict[int, str] = {}
        setup = _Setup(shards, view, batch_size, device_id, self._bad_rows)
        count, threads = (1, workers) if self.gpu else (workers, 1)
        self.lanes = [_Lane(setup, threads) for _ in range(count)]

    @property
    def bad_rows(self) -> Mapping[int, str]:
        """Rows DALI failed to decode, with its reason; no later batch feeds them to DALI."""
        return self._bad_rows

    def batches(
        self,
        batches: list[np.ndarray],
        first: int,
        seeds: EpochSeeds,
        spares: Spares | None = None,
    ) -> Iterator[Decoded]:
        """Decode batch `first`, `first + 1`, … of `batches`, each batch's train-view draws from
        `seeds` (`spares`: keep the batches full)."""
        count = len(self.lanes)
        for index, lane in enumerate(self.lanes):
            numbered = [(n, batches[n]) for n in range(first, len(batches)) if n % count == index]
            lane.start(numbered, spares, seeds)
        finished = False
        try:
            for number in range(first, len(batches)):
                yield self.lanes[number % count].take(number)
            for lane in self.lanes:
                lane.finish()
            finished = True
        finally:
            if not finished:
                for lane in self.lanes:
                    lane.drop()


class DaliGpuRunner(DaliRunner):
    """Backend `dali-gpu`: one pipeline with `workers` threads, nvJPEG and augmentation on the GPU."""

    gpu = True


class DaliCpuRunner(DaliRunner):
    """Backend `dali-cpu`: `workers` single-threaded pipelines on the CPU."""

    gpu = False


def _skipped(fed: _Fed) -> Decoded:
    return Decoded(fed.number, None, fed.rows, fed.rejects)


def _dali_notice(warning: warnings.WarningMessage) -> bool:
    """A warning building our pipeline always gives: a deprecated alias inside DALI."""
    return issubclass(warning.category, DeprecationWarning) and "nvidia/dali" in warning.filename


def _to_torch(images: Any) -> torch.Tensor:
    """Zero-copy view of a dense DALI output (the dynamic executor never reuses it)."""
    return torch.from_dlpack(images.as_tensor())
