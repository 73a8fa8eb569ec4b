"""`manifest.json`: what a shard set holds; written last, so its presence marks a complete set."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ns_data import __version__
from ns_data.atomic import write_json
from ns_data.errors import DataError

MANIFEST_NAME = "manifest.json"
FORMAT = "ns-shards/1"
LABELS_NAME = "labels.npy"
"""A labeled set's class of every sample, in sample id order (int32 .npy): read once at open."""


def label_column(labels: Sequence[int]) -> bytes:
    """The bytes of `LABELS_NAME` for these class indices (one per sample, in id order)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(labels, dtype=np.int32), allow_pickle=False)
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One tar of a set: file names, sample count, first global sample id and size in bytes."""

    tar: str
    index: str
    count: int
    first_id: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ImageStats:
    """Width and height statistics of the images in a set."""

    min_width: int
    max_width: int
    mean_width: float
    min_height: int
    max_height: int
    mean_height: float

    @classmethod
    def of(cls, widths: Sequence[int], heights: Sequence[int]) -> ImageStats | None:
        """Statistics of these image sizes (None when there are none)."""
        if not widths:
            return None
        return cls(
            min_width=min(widths),
            max_width=max(widths),
            mean_width=round(sum(widths) / len(widths), 2),
            min_height=min(heights),
            max_height=max(heights),
            mean_height=round(sum(heights) / len(heights), 2),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """The description of a shard set. `class_counts` is empty for unlabeled sets."""

    name: str
    classes: list[str]
    labeled: bool
    shards: list[ShardInfo]
    class_counts: list[int]
    image_stats: ImageStats | None
    source: str
    ns_version: str = __version__
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)
    labels_file: str | None = None
    """`LABELS_NAME` when the set has one (sets written before it read `.cls` members instead)."""

    @classmethod
    def build(
        cls,
        name: str,
        *,
        classes: Sequence[str] | None,
        shards: list[ShardInfo],
        labels: Iterable[int],
        widths: Sequence[int],
        heights: Sequence[int],
        source: str,
        extra: dict[str, Any] | None = None,
    ) -> Manifest:
        """The manifest of a set just written: `classes` None for an unlabeled set, `labels` the
        class of each sample (none when unlabeled), `widths` and `heights` its image sizes."""
        labeled = classes is not None
        counts = Counter(labels)
        return cls(
            name=name,
            classes=list(classes or []),
            labeled=labeled,
            shards=shards,
            class_counts=[counts[c] for c in range(len(classes or []))] if labeled else [],
            image_stats=ImageStats.of(widths, heights),
            source=source,
            extra=extra or {},
            labels_file=LABELS_NAME if labeled else None,
        )

    @property
    def num_samples(self) -> int:
        return sum(s.count for s in self.shards)

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "num_samples": self.num_samples}

    def to_json(self) -> str:
        """The text of `manifest.json`."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, directory: Path) -> None:
        write_json(directory / MANIFEST_NAME, self.to_dict())

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """Read `directory/manifest.json`; raise DataError with the fix when missing or bad."""
        path = Path(directory) / MANIFEST_NAME
        if not Path(directory).exists():
            raise DataError(f"shard set {directory} does not exist; create it with `ns shard`")
        if not path.is_file():
            raise DataError(
                f"{path} is missing: {directory} is not a finished shard set; run `ns shard`"
            )
        return cls.from_json(path.read_text(), str(path))

    @classmethod
    def from_json(cls, text: str, path: str) -> Manifest:
        """Parse manifest text read from `path` (named in errors)."""
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise DataError(f"{path} has format {raw.get('format')!r}, expected {FORMAT!r}")
            stats = raw["image_stats"]
            return cls(
                name=raw["name"],
                classes=list(raw["classes"]),
                labeled=bool(raw["labeled"]),
                shards=[ShardInfo(**s) for s in raw["shards"]],
                class_counts=list(raw["class_counts"]),
                image_stats=ImageStats(**stats) if stats else None,
                source=raw["source"],
                ns_version=raw["ns_version"],
                format=raw["format"],
                extra=raw.get("extra", {}),
                labels_file=raw.get("labels_file"),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise DataError(
                f"{path} is not a valid manifest ({err}); rebuild the set with `ns shard`"
            ) from err
