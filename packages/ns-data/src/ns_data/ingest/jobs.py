"""The two kinds of work `ns shard` hands to worker processes: scan a chunk, write a shard.

Both are plain picklable dataclasses run by top-level functions. Each job writes its own result
(a scan cache, or a tar + index + done marker) atomically, so a killed run loses only the jobs
in flight. The bytes a shard stores come from the source again, except re-encoded images and the
members of a `.tar.gz` (it cannot be read at an offset): the scan keeps those in a work file,
the chunk's blob, streamed to disk so memory holds one image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO

from ns_data.images.verify import UnusableImage, Verify, check_image
from ns_data.ingest.sources import SourceItem, read_items
from ns_data.ingest.tar_listing import is_compressed
from ns_data.shards.output_dir import WORK_DIR, OutputDir
from ns_data.shards.writer import TarBuilder, index_name


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """What scanning found for one item; `reason` is empty when the image is stored."""

    reason: str
    ext: str = ""
    width: int = 0
    height: int = 0
    size: int = 0  # bytes stored in the shard
    blob: str = ""  # work file holding the re-encoded bytes; empty: the original bytes
    blob_offset: int = 0


@dataclass(frozen=True, slots=True)
class ScanJob:
    """Verify (and re-encode) a chunk of items; results are cached under `name`."""

    out: OutputDir
    name: str
    items: list[SourceItem]
    max_side: int | None
    quality: int
    verify: Verify


@dataclass(frozen=True, slots=True)
class ScanResult:
    records: list[ScanRecord]
    bytes_read: int


@dataclass(frozen=True, slots=True)
class ShardJob:
    """Write one planned shard: its tar, its DALI index, then its done marker (holding `plan`)."""

    out: OutputDir
    tar: str
    plan: str
    samples: list[tuple[SourceItem, ScanRecord]]
    labeled: bool


def scan_chunk(job: ScanJob) -> ScanResult:
    """Check every item of the chunk, or load the cached result of an earlier run."""
    cache = f"{WORK_DIR}/scan/{job.name}.json"
    if job.out.exists(cache):
        return ScanResult([ScanRecord(*row) for row in json.loads(job.out.read_text(cache))], 0)
    records: list[ScanRecord] = []
    blob_name = f"{WORK_DIR}/scan/{job.name}.bin"
    bytes_read = 0
    with ExitStack() as stack:
        blob: BinaryIO | None = None
        blob_size = 0
        for item, data in zip(job.items, read_items(job.items), strict=True):
            bytes_read += len(data)
            try:
                image = check_image(
                    data, max_side=job.max_side, quality=job.quality, verify=job.verify
                )
            except UnusableImage as err:
                records.append(ScanRecord(str(err)))
                continue
            if image.data is None and not is_compressed(item.path):
                records.append(ScanRecord("", image.ext, image.width, image.height, len(data)))
                continue
            kept = data if image.data is None else image.data
            if blob is None:
                blob = stack.enter_context(job.out.open_atomic(blob_name))
            blob.write(kept)
            records.append(
                ScanRecord(
                    "", image.ext, image.width, image.height, len(kept), blob_name, blob_size
                )
            )
            blob_size += len(kept)
    rows = [[getattr(r, name) for name in ScanRecord.__slots__] for r in records]
    job.out.write_atomic(cache, json.dumps(rows).encode())
    return ScanResult(records, bytes_read)


def done_marker(tar: str) -> str:
    """The work file that records a finished shard and the plan it was written from."""
    return f"{WORK_DIR}/done/{tar}.json"


def write_shard(job: ShardJob) -> int:
    """Write the shard's tar and index, then its done marker; return the tar's size in bytes."""
    with job.out.open_atomic(job.tar) as handle:
        builder = TarBuilder(handle)
        for (item, record), data in zip(job.samples, _stored_bytes(job), strict=True):
            builder.add(item.key, record.ext, data, item.label if job.labeled else None)
        index = builder.close()
        size = handle.tell()
    job.out.write_atomic(index_name(job.tar), index.encode())
    job.out.write_atomic(
        done_marker(job.tar), json.dumps({"plan": job.plan, "bytes": size}).encode()
    )
    return size


def _stored_bytes(job: ShardJob) -> Iterator[bytes]:
    """The bytes each sample stores, in order: from its source, or from its chunk's blob."""
    originals = read_items(item for item, record in job.samples if not record.blob)
    name, blob = "", None
    try:
        for _, record in job.samples:
            if not record.blob:
                yield next(originals)
                continue
            if blob is None or record.blob != name:
                if blob is not None:
                    blob.close()
                name, blob = record.blob, job.out.fs.open(job.out.path(record.blob), "rb")
            blob.seek(record.blob_offset)
            yield blob.read(record.size)
    finally:
        if blob is not None:
            blob.close()
        originals.close()
