"""Write a WebDataset shard set: tars rolled by count and bytes, a DALI index per tar, a manifest.

Tars are deterministic (sorted input in, fixed headers: mtime 0, uid/gid 0, mode 0644), so the same
input always gives byte-identical shards. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ns_data.atomic import atomic_path
from ns_data.dali_index import Component, format_index
from ns_data.errors import DataError
from ns_data.manifest import ImageStats, Manifest, ShardInfo

IMAGE_EXTS = ("jpg", "png", "webp")
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-/]+$")
_TAR_BLOCK = 512


def shard_name(prefix: str, number: int) -> str:
    """`PREFIX-000000.tar`."""
    return f"{prefix}-{number:06d}.tar"


def index_name(tar_name: str) -> str:
    """The DALI index beside a tar: `PREFIX-000000.idx`."""
    return tar_name.removesuffix(".tar") + ".idx"


@dataclass(slots=True)
class _Sizes:
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)

    def stats(self) -> ImageStats | None:
        if not self.widths:
            return None
        return ImageStats(
            min_width=min(self.widths),
            max_width=max(self.widths),
            mean_width=round(sum(self.widths) / len(self.widths), 2),
            min_height=min(self.heights),
            max_height=max(self.heights),
            mean_height=round(sum(self.heights) / len(self.heights), 2),
        )


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
        self._class_counts = [0] * len(self.classes)
        self._sizes = _Sizes()
        self._buffer = io.BytesIO()
        self._tar: tarfile.TarFile | None = None
        self._entries: list[list[Component]] = []
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
        if not _KEY_RE.match(key):
            raise DataError(f"sample key {key!r} may only hold letters, digits, '_', '-' and '/'")
        if key in self._keys:
            raise DataError(f"duplicate sample key {key!r}: keys must be unique within a set")
        if ext not in IMAGE_EXTS:
            raise DataError(f"image extension {ext!r} is not one of {IMAGE_EXTS}")
        if self.labeled and (label is None or not 0 <= label < len(self.classes)):
            raise DataError(f"sample {key!r} needs a class index in [0, {len(self.classes)})")
        self._keys.add(key)
        if self._tar is None:
            self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.GNU_FORMAT)
        components = [self._add_member(f"{key}.{ext}", ext, image)]
        if self.labeled:
            assert label is not None
            components.append(self._add_member(f"{key}.cls", "cls", str(label).encode()))
            self._class_counts[label] += 1
        self._entries.append(components)
        self._sizes.widths.append(size[0])
        self._sizes.heights.append(size[1])
        sample_id = self._next_id
        self._next_id += 1
        if len(self._entries) >= self.max_count or self._tar.offset >= self.max_bytes:
            self._finish_shard()
        return sample_id

    def _add_member(self, name: str, ext: str, data: bytes) -> Component:
        assert self._tar is not None
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uname = info.gname = ""
        start = self._tar.offset
        self._tar.addfile(info, io.BytesIO(data))
        padded = -(-len(data) // _TAR_BLOCK) * _TAR_BLOCK
        data_offset = self._tar.offset - padded
        assert data_offset > start
        return Component(ext, data_offset, len(data), name)

    def _finish_shard(self) -> None:
        if self._tar is None or not self._entries:
            return
        self._tar.close()
        tar_name = shard_name(self.prefix, len(self._shards))
        data = self._buffer.getvalue()
        with atomic_path(self.out_dir / index_name(tar_name)) as tmp:
            tmp.write_text(format_index(self._entries))
        with atomic_path(self.out_dir / tar_name) as tmp:
            tmp.write_bytes(data)
        count = len(self._entries)
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
        self._entries = []

    def close(self) -> Manifest:
        """Finish the last shard and write `manifest.json` (last, so it marks a complete set)."""
        self._finish_shard()
        if not self._shards:
            raise DataError(f"no samples were written to {self.out_dir}: the source is empty")
        manifest = Manifest(
            name=self.prefix,
            classes=self.classes,
            labeled=self.labeled,
            shards=self._shards,
            class_counts=self._class_counts if self.labeled else [],
            image_stats=self._sizes.stats(),
            source=self.source,
        )
        manifest.save(self.out_dir)
        return manifest
