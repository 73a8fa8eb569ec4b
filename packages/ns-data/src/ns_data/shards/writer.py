"""Write a WebDataset shard set: tars rolled by count and bytes, a DALI index per tar, a manifest.

Tars are deterministic (sorted input in, fixed headers: mtime 0, uid/gid 0, mode 0644), so the same
input always gives byte-identical shards. Every file is written under a temporary name and renamed.
`TarBuilder` holds the tar format; `ShardSetWriter` streams samples into rolled shards;
`ns_data.ingest.pipeline` builds whole sets from image collections in parallel.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ns_data.atomic import atomic_path
from ns_data.errors import DataError
from ns_data.images.formats import STORED_EXTS
from ns_data.shards.index import Component, format_index
from ns_data.shards.manifest import LABELS_NAME, Manifest, ShardInfo, label_column

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-/]+$")
_WEBDATASET_META = re.compile(r"__[^/]*__/")
"""webdataset's `skip_meta` (`__[^/]*__($|/)`) on `KEY.EXT`: a first folder `__NAME__`."""
_TAR_BLOCK = 512


def shard_name(prefix: str, number: int) -> str:
    """`PREFIX-000000.tar`."""
    return f"{prefix}-{number:06d}.tar"


def index_name(tar_name: str) -> str:
    """The DALI index beside a tar: `PREFIX-000000.idx`."""
    return tar_name.removesuffix(".tar") + ".idx"


def is_valid_key(key: str) -> bool:
    """Whether `key` may name a sample: letters, digits, '_', '-' and '/' (no dots), and no first
    folder `__NAME__` (webdataset skips it as metadata)."""
    return bool(_KEY_RE.match(key)) and not _WEBDATASET_META.match(key)


def member_bytes(key: str, ext: str, size: int, labeled: bool) -> int:
    """Bytes one sample takes in a tar: headers plus data padded to 512-byte blocks."""
    total = _member_bytes(f"{key}.{ext}", size)
    if labeled:
        total += _member_bytes(f"{key}.cls", 3)
    return total


def tar_bytes(members: int) -> int:
    """Size of a tar whose members take `members` bytes: plus end blocks, padded to a record."""
    record = tarfile.RECORDSIZE
    return -(-(members + 2 * _TAR_BLOCK) // record) * record


def _member_bytes(name: str, size: int) -> int:
    header = _TAR_BLOCK
    if len(name.encode()) >= tarfile.LENGTH_NAME:  # GNU long-name record before the header
        header += _TAR_BLOCK + _padded(len(name.encode()) + 1)
    return header + _padded(size)


def _padded(size: int) -> int:
    return -(-size // _TAR_BLOCK) * _TAR_BLOCK


class TarBuilder:
    """Write samples into one tar with fixed headers and collect their DALI index entries.

    Headers come from `tarfile.TarInfo.tobuf` (GNU format, as `tarfile.open(mode="w")` writes);
    the data is written straight after them, skipping `TarFile.addfile`'s per-member copies.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        self.offset = 0
        """Bytes written so far."""
        self.entries: list[list[Component]] = []

    def add(self, key: str, ext: str, image: bytes, label: int | None) -> None:
        """Append `KEY.EXT` and, when `label` is given, `KEY.cls` (ASCII class index)."""
        components = [self._add_member(f"{key}.{ext}", ext, image)]
        if label is not None:
            components.append(self._add_member(f"{key}.cls", "cls", str(label).encode()))
        self.entries.append(components)

    def _add_member(self, name: str, ext: str, data: bytes) -> Component:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uname = info.gname = ""
        header = info.tobuf(tarfile.GNU_FORMAT, tarfile.ENCODING, "surrogateescape")
        padding = _padded(len(data)) - len(data)
        self._file.write(header)
        self._file.write(data)
        self._file.write(bytes(padding))
        start = self.offset + len(header)
        self.offset = start + len(data) + padding
        return Component(ext, start, len(data), name)

    def close(self) -> str:
        """Finish the tar (two end blocks, padding to a full record); return its DALI index text."""
        end = tar_bytes(self.offset) - self.offset
        self._file.write(bytes(end))
        self.offset += end
        return format_index(self.entries)


@dataclass(slots=True)
class _Sizes:
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)


class ShardSetWriter:
    """Append samples (image bytes + optional class index); `close()` writes the manifest.

    Example:
        with ShardSetWriter(out, "train", classes=["cat", "dog"]) as w:
            w.add("img0001", jpeg_bytes, "jpg", label=1, size=(500, 375))
    """

    def __init__(
        self,
        out_dir: Path,
        prefix: str,
        *,
        classes: list[str] | None,
        max_count: int = 10_000,
        max_bytes: int = 1 << 30,
        first_id: int = 0,
        source: str = "",
    ) -> None:
        if max_count < 1 or max_bytes < 1:
            raise DataError("max_count and max_bytes must be positive")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.classes = list(classes or [])
        self.labeled = classes is not None
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.source = source
        self._next_id = first_id
        self._shards: list[ShardInfo] = []
        self._labels: list[int] = []
        self._sizes = _Sizes()
        self._buffer = io.BytesIO()
        self._tar: TarBuilder | None = None
        self._keys: set[str] = set()

    def __enter__(self) -> ShardSetWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()

    def add(
        self, key: str, image: bytes, ext: str, *, label: int | None = None, size: tuple[int, int]
    ) -> int:
        """Append one sample and return its global sample id."""
        if not is_valid_key(key):
            raise DataError(
                f"sample key {key!r} may only hold letters, digits, '_', '-' and '/', and not "
                "start with a folder `__NAME__` (webdataset skips it)"
            )
        if key in self._keys:
            raise DataError(f"duplicate sample key {key!r}: keys must be unique within a set")
        if ext not in STORED_EXTS:
            raise DataError(f"image extension {ext!r} is not one of {STORED_EXTS}")
        if self.labeled and (label is None or not 0 <= label < len(self.classes)):
            raise DataError(f"sample {key!r} needs a class index in [0, {len(self.classes)})")
        self._keys.add(key)
        if self._tar is None:
            self._tar = TarBuilder(self._buffer)
        self._tar.add(key, ext, image, label if self.labeled else None)
        if self.labeled:
            assert label is not None
            self._labels.append(label)
        self._sizes.widths.append(size[0])
        self._sizes.heights.append(size[1])
        sample_id = self._next_id
        self._next_id += 1
        if len(self._tar.entries) >= self.max_count or self._tar.offset >= self.max_bytes:
            self._finish_shard()
        return sample_id

    def _finish_shard(self) -> None:
        if self._tar is None or not self._tar.entries:
            return
        count = len(self._tar.entries)
        index_text = self._tar.close()
        tar_name = shard_name(self.prefix, len(self._shards))
        data = self._buffer.getvalue()
        with atomic_path(self.out_dir / index_name(tar_name)) as tmp:
            tmp.write_text(index_text)
        with atomic_path(self.out_dir / tar_name) as tmp:
            tmp.write_bytes(data)
        self._shards.append(
            ShardInfo(
                tar=tar_name,
                index=index_name(tar_name),
                count=count,
                first_id=self._next_id - count,
                bytes=len(data),
            )
        )
        self._buffer = io.BytesIO()
        self._tar = None

    def close(self) -> Manifest:
        """Finish the last shard and write `manifest.json` (last, so it marks a complete set)."""
        self._finish_shard()
        if not self._shards:
            raise DataError(f"no samples were written to {self.out_dir}: the source is empty")
        if self.labeled:
            with atomic_path(self.out_dir / LABELS_NAME) as tmp:
                tmp.write_bytes(label_column(self._labels))
        manifest = Manifest.build(
            self.prefix,
            classes=self.classes if self.labeled else None,
            shards=self._shards,
            labels=self._labels,
            widths=self._sizes.widths,
            heights=self._sizes.heights,
            source=self.source,
        )
        manifest.save(self.out_dir)
        return manifest
