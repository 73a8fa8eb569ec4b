"""`ns shard` from Python: turn an image collection into a deterministic, resumable shard set.

How parallel workers still give byte-identical shards, and how a killed run resumes:
1. The source is read in a stable order (`sources.py`) and cut into fixed chunks of `CHUNK` items
   (all the items of one `.tar.gz` form one chunk: it can only be read forward, in one pass).
2. Scan (parallel, one job per chunk): read each file, verify it decodes, re-encode it when its
   longer side exceeds `max_side`. The result (format, size, bytes to store; or the reason it is
   rejected) is cached in `OUT/.ns-shard/scan/` under a fingerprint of the chunk's files (path,
   offset, size, mtime) and the options.
3. Plan: the accepted images, in order, are cut into shards by `max_count` and `max_bytes` (the
   exact tar size of each sample), so shard boundaries and global ids (a shard's first id +
   position) are fixed before anything is written and do not depend on the number of workers.
4. Write (parallel, one job per shard): tar and DALI index under temp names, renamed into place,
   then a done marker holding the shard's fingerprint. A rerun skips shards whose marker matches.
5. `rejected.jsonl`, then `manifest.json` last; the work folder is deleted.

The whole run holds the output folder's lock (`ns_data.job_lock`): a second run on the same
folder is refused at once. Damaged source tars are listed in `rejected.jsonl` (their samples
before the damage are kept) unless `strict` is set.

The scan results are held in memory (a few hundred bytes per image): split collections of more
than some tens of millions of images into several sets.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import PIL
from rich.progress import Progress

from ns_data.cpus import usable_cores
from ns_data.errors import DataError
from ns_data.images.verify import VERIFY_MODES, Verify
from ns_data.ingest.jobs import (
    ScanJob,
    ScanRecord,
    ScanResult,
    ShardJob,
    done_marker,
    scan_chunk,
    write_shard,
)
from ns_data.ingest.sources import (
    SOURCE_KINDS,
    Rejection,
    Source,
    SourceItem,
    SourceKind,
    read_source,
)
from ns_data.ingest.tar_listing import is_compressed
from ns_data.job_lock import hold_output_lock
from ns_data.progress import image_progress
from ns_data.shards.manifest import (
    LABELS_NAME,
    MANIFEST_NAME,
    Manifest,
    ShardInfo,
    label_column,
)
from ns_data.shards.output_dir import REJECTED_NAME, WORK_DIR, OutputDir
from ns_data.shards.writer import index_name, is_valid_key, member_bytes, shard_name, tar_bytes

CHUNK = 256
J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardConfig:
    """Options of `shard_images`; bad values raise DataError naming the option."""

    prefix: str | None = None
    """Shard file prefix (`PREFIX-000000.tar`); default: the output folder's name."""
    kind: SourceKind = "auto"
    """Source kind: auto, imagefolder, folder, list or webdataset (see `ns_data.ingest.sources`)."""
    classes_file: Path | None = None
    """Class names, one per line, in index order; default: sorted folder names or indices."""
    max_count: int = 10_000
    """Most samples per shard."""
    max_bytes: int = 1 << 30
    """Most bytes per shard (a single larger image gets a shard of its own)."""
    max_side: int | None = None
    """Re-encode images whose longer side exceeds this (aspect kept); None copies the bytes."""
    quality: int = 90
    """JPEG/WebP quality of re-encoded images."""
    verify: Verify = "decode"
    """decode: every image is decoded (JPEG at 1/8 scale); structure: header and file structure
    only, 2-3× faster, misses corrupt compressed data (see `shard_image`)."""
    workers: int | None = None
    """Worker processes; None: one per core."""
    overwrite: bool = False
    """Replace an existing shard set in the output folder."""
    strict: bool = False
    """Stop at a damaged source tar instead of keeping its samples before the damage."""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise DataError(f"kind {self.kind!r} is not one of {', '.join(SOURCE_KINDS)}")
        for name in ("max_count", "max_bytes", "max_side", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DataError(f"{name} must be a positive integer, got {value}")
        if self.verify not in VERIFY_MODES:
            raise DataError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}")
        if not 1 <= self.quality <= 100:
            raise DataError(f"quality must be in [1, 100], got {self.quality}")
        if self.prefix is not None and not (self.prefix and is_valid_key(self.prefix)):
            raise DataError(f"prefix {self.prefix!r} may only hold letters, digits, '_' and '-'")


@dataclass(frozen=True, slots=True)
class ShardReport:
    """What a run did: the manifest, rejects, damaged tars, shards written or reused, speed."""

    out: str
    manifest: Manifest
    rejected: int
    """Lines of `rejected.jsonl`: files and members not written, and damaged tars."""
    damaged: list[str]
    """Names of the source tars found damaged (their samples before the damage were kept)."""
    shards_written: int
    shards_reused: int
    bytes_read: int
    seconds: float


def shard_images(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: ShardConfig | None = None,
    *,
    progress: bool = False,
) -> ShardReport:
    """Write the images of `source` as a shard set in `out` (a folder or fsspec URL).

    Example:
        shard_images("photos/", "shards/train", ShardConfig(max_count=5000, workers=8))
    """
    config = config or ShardConfig()
    start = time.perf_counter()
    src = read_source(
        source, kind=config.kind, classes_file=config.classes_file, strict=config.strict
    )
    output = OutputDir(out)
    _check_outside(output, src)
    prefix = config.prefix or output.name
    if not is_valid_key(prefix) or "/" in prefix:
        raise DataError(f"output folder name {prefix!r} is not a valid shard prefix; pass --prefix")
    with hold_output_lock(output.url):
        output.prepare(config.overwrite)
        return _shard(src, output, prefix, config, progress, start)


def _shard(
    src: Source,
    output: OutputDir,
    prefix: str,
    config: ShardConfig,
    progress: bool,
    start: float,
) -> ShardReport:
    """Scan, plan and write the set into the prepared `output`, then its rejects and manifest."""
    with _pool(config.workers or usable_cores()) as pool, image_progress(progress) as bar:
        scanned, bytes_read = _scan(pool, bar, output, src, config)
        accepted = [
            (item, rec) for item, rec in zip(src.items, scanned, strict=True) if not rec.reason
        ]
        rejected = src.damaged + src.rejected
        rejected += [
            Rejection(item.origin, rec.reason)
            for item, rec in zip(src.items, scanned, strict=True)
            if rec.reason
        ]
        if not accepted:
            output.remove(WORK_DIR)
            first = rejected[0]
            raise DataError(
                f"no file of {src.root} is a usable image ({first.origin}: {first.reason})"
            )
        jobs = _plan(output, prefix, accepted, src.classes is not None, config)
        sizes, written = _write(pool, bar, output, jobs)
    manifest = _manifest(prefix, src, config, jobs, sizes, accepted, len(rejected))
    lines = [json.dumps({"file": r.origin, "reason": r.reason}) + "\n" for r in rejected]
    output.write_atomic(REJECTED_NAME, "".join(lines).encode())
    output.remove_stale_shards({name for s in manifest.shards for name in (s.tar, s.index)})
    output.remove(LABELS_NAME)
    if manifest.labeled:
        output.write_atomic(
            LABELS_NAME,
            label_column([item.label for item, _ in accepted if item.label is not None]),
        )
    output.write_atomic(MANIFEST_NAME, manifest.to_json().encode())
    output.remove(WORK_DIR)
    return ShardReport(
        out=output.url,
        manifest=manifest,
        rejected=len(rejected),
        damaged=[r.origin for r in src.damaged],
        shards_written=written,
        shards_reused=len(jobs) - written,
        bytes_read=bytes_read,
        seconds=time.perf_counter() - start,
    )


def _check_outside(output: OutputDir, src: Source) -> None:
    local = output.local_path
    if local is None or not src.root.is_dir():
        return
    if local.resolve().is_relative_to(src.root.resolve()):
        raise DataError(
            f"output {local} is inside the source {src.root}; write the shards elsewhere"
        )


def _scan(
    pool: Executor | None, bar: Progress, output: OutputDir, src: Source, config: ShardConfig
) -> tuple[list[ScanRecord], int]:
    chunks = _chunks(src.items)
    options = (
        config.max_side,
        config.quality if config.max_side else None,
        config.verify,
        PIL.__version__,
    )
    jobs = [
        ScanJob(
            output,
            _fingerprint([options, *map(_item_row, c)]),
            c,
            config.max_side,
            config.quality,
            config.verify,
        )
        for c in chunks
    ]
    results: list[ScanResult | None] = [None] * len(jobs)
    task = bar.add_task("verify", total=len(src.items), bytes=0)
    total = 0
    for number, result in _run(pool, scan_chunk, jobs):
        results[number] = result
        total += result.bytes_read
        bar.update(task, advance=len(jobs[number].items), bytes=total)
    return [rec for result in results if result for rec in result.records], total


def _chunks(items: list[SourceItem]) -> list[list[SourceItem]]:
    """Scan jobs: `CHUNK` items each, except that a `.tar.gz` is one job (read in one pass)."""
    chunks: list[list[SourceItem]] = []
    for tar, run in itertools.groupby(items, lambda i: i.path if is_compressed(i.path) else ""):
        group = list(run)
        chunks += [group] if tar else [group[i : i + CHUNK] for i in range(0, len(group), CHUNK)]
    return chunks


def _plan(
    output: OutputDir,
    prefix: str,
    accepted: list[tuple[SourceItem, ScanRecord]],
    labeled: bool,
    config: ShardConfig,
) -> list[ShardJob]:
    """Cut the accepted samples into shards: at most `max_count` samples and `max_bytes` bytes."""
    ranges: list[tuple[int, int]] = []
    begin, members = 0, 0
    for i, (item, rec) in enumerate(accepted):
        cost = member_bytes(item.key, rec.ext, rec.size, labeled)
        full = i - begin >= config.max_count or tar_bytes(members + cost) > config.max_bytes
        if i > begin and full:
            ranges.append((begin, i))
            begin, members = i, 0
        members += cost
    ranges.append((begin, len(accepted)))
    jobs = []
    for number, (lo, hi) in enumerate(ranges):
        samples = accepted[lo:hi]
        rows = [
            [*_item_row(item), item.label, rec.ext, rec.blob, rec.size] for item, rec in samples
        ]
        plan = _fingerprint([labeled, *rows])
        jobs.append(ShardJob(output, shard_name(prefix, number), plan, samples, labeled))
    return jobs


def _write(
    pool: Executor | None, bar: Progress, output: OutputDir, jobs: list[ShardJob]
) -> tuple[list[int], int]:
    """Write the shards not yet done; return every shard's size and how many were written."""
    sizes = [0] * len(jobs)
    todo = []
    for number, job in enumerate(jobs):
        done = _done_size(output, job)
        if done is None:
            todo.append(number)
        else:
            sizes[number] = done
    task = bar.add_task("write", total=sum(len(jobs[n].samples) for n in todo), bytes=0)
    total = 0
    for position, size in _run(pool, write_shard, [jobs[n] for n in todo]):
        sizes[todo[position]] = size
        total += size
        bar.update(task, advance=len(jobs[todo[position]].samples), bytes=total)
    return sizes, len(todo)


def _done_size(output: OutputDir, job: ShardJob) -> int | None:
    """The tar size of a shard finished by an earlier run from the same plan, else None."""
    marker = done_marker(job.tar)
    if not (
        output.exists(marker) and output.exists(job.tar) and output.exists(index_name(job.tar))
    ):
        return None
    record = json.loads(output.read_text(marker))
    return int(record["bytes"]) if record["plan"] == job.plan else None


def _manifest(
    prefix: str,
    src: Source,
    config: ShardConfig,
    jobs: list[ShardJob],
    sizes: list[int],
    accepted: list[tuple[SourceItem, ScanRecord]],
    rejected: int,
) -> Manifest:
    shards, first = [], 0
    for job, size in zip(jobs, sizes, strict=True):
        shards.append(ShardInfo(job.tar, index_name(job.tar), len(job.samples), first, size))
        first += len(job.samples)
    options = {
        "max_count": config.max_count,
        "max_bytes": config.max_bytes,
        "verify": config.verify,
    }
    if config.max_side is not None:
        options |= {"max_side": config.max_side, "quality": config.quality}
    return Manifest.build(
        prefix,
        classes=src.classes,
        shards=shards,
        labels=[item.label for item, _ in accepted if item.label is not None],
        widths=[record.width for _, record in accepted],
        heights=[record.height for _, record in accepted],
        source=src.description,
        extra={"rejected": rejected, "options": options},
    )


def _item_row(item: SourceItem) -> list[object]:
    return [item.key, item.path, item.offset, item.size, item.stamp]


def _fingerprint(rows: Sequence[object]) -> str:
    return hashlib.sha1(json.dumps(rows, default=str).encode()).hexdigest()[:20]


@contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    """A process pool (started before any progress thread exists), or None to run in-process."""
    if workers == 1:
        yield None
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    pool.submit(int).result()
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run(pool: Executor | None, fn: Callable[[J], R], jobs: list[J]) -> Iterator[tuple[int, R]]:
    """(job number, result) as jobs finish, in the pool or in this process."""
    if pool is None:
        for number, job in enumerate(jobs):
            yield number, fn(job)
        return
    futures = {pool.submit(fn, job): number for number, job in enumerate(jobs)}
    for future in as_completed(futures):
        yield futures[future], future.result()
