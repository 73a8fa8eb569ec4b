"""A labeled eval source read by position: a shard set, or the files of a class-folder tree.

What `ns corrupt` and `ns perturb` read: every image with its class, its key, and where it came
from (for error messages), plus the released benchmarks' file naming.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image

from ns_data.errors import DataError
from ns_data.ingest.sources import SourceItem, read_bytes, read_source
from ns_data.shards.manifest import MANIFEST_NAME
from ns_data.shards.reader import ShardSet


@dataclass(frozen=True)
class LabeledImages:
    """A labeled source read by position: a shard set, or the files of a class-folder tree."""

    description: str
    classes: list[str]
    keys: list[str]
    labels: list[int]
    shards: ShardSet | None
    items: list[SourceItem]
    """The files, when `shards` is None."""

    def read(self, position: int) -> bytes:
        if self.shards is not None:
            return self.shards.read_image(position)
        return read_bytes(self.items[position])

    def origin(self, position: int) -> str:
        if self.shards is not None:
            return f"{self.shards.directory}:{self.keys[position]}"
        return self.items[position].path


def open_labeled(source: Path) -> LabeledImages:
    """Open a labeled shard set or a class-folder tree; DataError naming the fix otherwise."""
    if not source.exists():
        raise DataError(
            f"source {source} does not exist; pass a labeled shard set or a class-folder tree"
        )
    if (source / MANIFEST_NAME).is_file():
        shards = ShardSet(source)
        if not shards.manifest.labeled:
            raise DataError(
                f"{source} is an unlabeled shard set; pass a labeled one (`ns shard` of a "
                "class-folder tree) or the class-folder tree itself"
            )
        labels = shards.labels.tolist()
        return LabeledImages(
            f"shards:{source}", shards.manifest.classes, _shard_keys(shards), labels, shards, []
        )
    entries = list(os.scandir(source)) if source.is_dir() else []
    visible = [e for e in entries if not e.name.startswith(".")]
    if not visible or not all(e.is_dir() for e in visible):
        raise DataError(
            f"{source} is neither a labeled shard set (it has no {MANIFEST_NAME}) nor a "
            "class-folder tree; pass `ns shard` output or a folder with one folder per class"
        )
    src = read_source(source, kind="imagefolder")
    assert src.classes is not None
    keys = [item.key for item in src.items]
    labels = [cast(int, item.label) for item in src.items]
    return LabeledImages(src.description, src.classes, keys, labels, None, src.items)


def _shard_keys(shards: ShardSet) -> list[str]:
    """Every sample's key, in id order: the member names in the sets' DALI indexes."""
    keys: list[str] = []
    for info in shards.manifest.shards:
        lines = (shards.directory / info.index).read_text().splitlines()[1:]
        keys.extend(line.split()[3].split(".", 1)[0] for line in lines)
    return keys


def select_per_class(labels: list[int], limit_per_class: int | None) -> list[int]:
    """Positions of the samples kept: all, or the first `limit_per_class` of each class."""
    if limit_per_class is None:
        return list(range(len(labels)))
    seen: dict[int, int] = {}
    kept = []
    for position, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= limit_per_class:
            kept.append(position)
    return kept


def decode_rgb(images: LabeledImages, position: int) -> np.ndarray:
    """The image at `position` as uint8 (height, width, 3) RGB; DataError naming it if broken."""
    data = images.read(position)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise DataError(
            f"{images.origin(position)} does not decode ({type(err).__name__}: {err}); remove "
            "it, or shard the set with `ns shard`, which rejects such files"
        ) from err


def released_name(images: LabeledImages, position: int) -> str:
    """`<class>/<key>.JPEG`, the key without a leading `<class>/` (class-folder sources)."""
    name = images.classes[images.labels[position]]
    return f"{name}/{images.keys[position].removeprefix(name + '/')}.JPEG"
