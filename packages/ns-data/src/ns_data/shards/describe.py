"""A shard set at a glance (what `ns info PATH` prints): samples, classes, bytes, shards, sizes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ns_data.errors import DataError
from ns_data.shards.manifest import MANIFEST_NAME, ImageStats, Manifest
from ns_data.shards.output_dir import OutputDir


@dataclass(frozen=True, slots=True)
class ShardSetSummary:
    """The summary of a finished shard set; `class_histogram` is empty when it is unlabeled."""

    path: str
    name: str
    samples: int
    shards: int
    bytes: int
    labeled: bool
    class_histogram: dict[str, int]
    image_stats: ImageStats | None
    rejected: int
    source: str
    ns_version: str

    def lines(self) -> list[str]:
        """The summary as short human-readable lines."""
        out = [
            f"{self.path}: {self.samples:,} samples in {self.shards:,} shards, "
            f"{self.bytes / 1e6:,.1f} MB ({'labeled' if self.labeled else 'unlabeled'})",
            f"source {self.source}, written by ns {self.ns_version}; {self.rejected:,} rejected",
        ]
        if self.image_stats is not None:
            s = self.image_stats
            out.append(
                f"image width {s.min_width}-{s.max_width} (mean {s.mean_width:g}), "
                f"height {s.min_height}-{s.max_height} (mean {s.mean_height:g})"
            )
        if self.class_histogram:
            counts = ", ".join(f"{name}: {n:,}" for name, n in self.class_histogram.items())
            out.append(f"{len(self.class_histogram)} classes: {counts}")
        return out


def describe_shard_set(path: str | os.PathLike[str]) -> ShardSetSummary:
    """Summarize the shard set at `path` (a folder or fsspec URL) from its manifest.

    Checks that every shard and index is present with the size the manifest records; raises
    DataError naming the file otherwise.
    """
    folder = OutputDir(path)
    if not folder.exists(MANIFEST_NAME):
        raise DataError(
            f"{folder.url} has no {MANIFEST_NAME}: not a finished shard set; run `ns shard`"
        )
    manifest = Manifest.from_json(folder.read_text(MANIFEST_NAME), folder.path(MANIFEST_NAME))
    for shard in manifest.shards:
        if not folder.exists(shard.index):
            raise DataError(
                f"{folder.path(shard.index)} is missing; rebuild with `ns shard --overwrite`"
            )
        if not folder.exists(shard.tar) or folder.size(shard.tar) != shard.bytes:
            raise DataError(
                f"{folder.path(shard.tar)} is missing or not {shard.bytes} bytes as the manifest "
                "says; rebuild the set with `ns shard --overwrite`"
            )
    return ShardSetSummary(
        path=folder.url,
        name=manifest.name,
        samples=manifest.num_samples,
        shards=len(manifest.shards),
        bytes=manifest.total_bytes,
        labeled=manifest.labeled,
        class_histogram=dict(zip(manifest.classes, manifest.class_counts, strict=False)),
        image_stats=manifest.image_stats,
        rejected=int(manifest.extra.get("rejected", 0)),
        source=manifest.source,
        ns_version=manifest.ns_version,
    )
