"""The two kinds of work `ns shard` hands to worker processes: scan a chunk, write a shard.

Both are plain picklable dataclasses run by top-level functions. Each job writes its own result
(a scan cache, or a tar + index + done marker) atomically, so a killed run loses only the jobs
in flight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ns_data.output_dir import WORK_DIR, OutputDir
from ns_data.shard_image import UnusableImage, Verify, check_image
from ns_data.shard_writer import TarBuilder, index_name
from ns_data.sources import SourceItem, read_bytes


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
    blob = bytearray()
    blob_name = f"{WORK_DIR}/scan/{job.name}.bin"
    bytes_read = 0
    for item in job.items:
        data = read_bytes(item)
        bytes_read += len(data)
        try:
            image = check_image(data, max_side=job.max_side, quality=job.quality, verify=job.verify)
        except UnusableImage as err:
            records.append(ScanRecord(str(err)))
            continue
        if image.data is None:
            records.append(ScanRecord("", image.ext, image.width, image.height, len(data)))
        else:
            records.append(
                ScanRecord(
                    "", image.ext, image.width, image.height, len(image.data), blob_name, len(blob)
                )
            )
            blob += image.data
    if blob:
        job.out.write_atomic(blob_name, bytes(blob))
    rows = [[getattr(r, name) for name in ScanRecord.__slots__] for r in records]
    job.out.write_atomic(cache, json.dumps(rows).encode())
    return ScanResult(records, bytes_read)


def done_marker(tar: str) -> str:
    """The work file that records a finished shard and the plan it was written from."""
    return f"{WORK_DIR}/done/{tar}.json"


def write_shard(job: ShardJob) -> int:
    """Write the shard's tar and index, then its done marker; return the tar's size in bytes."""
    blobs: dict[str, bytes] = {}
    with job.out.open_atomic(job.tar) as handle:
        builder = TarBuilder(handle)
        for item, record in job.samples:
            if record.blob:
                if record.blob not in blobs:
                    blobs[record.blob] = job.out.fs.cat_file(job.out.path(record.blob))
                start = record.blob_offset
                data = blobs[record.blob][start : start + record.size]
            else:
                data = read_bytes(item)
            builder.add(item.key, record.ext, data, item.label if job.labeled else None)
        index = builder.close()
        size = handle.tell()
    job.out.write_atomic(index_name(job.tar), index.encode())
    job.out.write_atomic(
        done_marker(job.tar), json.dumps({"plan": job.plan, "bytes": size}).encode()
    )
    return size
