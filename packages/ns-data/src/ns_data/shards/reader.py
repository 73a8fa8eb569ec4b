"""Open a finished shard set and read any sample by its global id (random access through the index)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ns_data.errors import DataError
from ns_data.images.formats import STORED_EXTS
from ns_data.loading.sampling import rank_bounds
from ns_data.shards.index import read_index
from ns_data.shards.manifest import Manifest


@dataclass(frozen=True, slots=True)
class SampleTable:
    """Where each sample's bytes lie: one row per sample, in global id order (column arrays)."""

    sample_id: np.ndarray  # int64
    shard: np.ndarray  # int32, position in `Manifest.shards`
    image_offset: np.ndarray  # int64
    image_size: np.ndarray  # int64
    label_offset: np.ndarray  # int64, -1 when unlabeled
    label_size: np.ndarray  # int64, 0 when unlabeled

    def __len__(self) -> int:
        return len(self.sample_id)


class ShardSet:
    """A shard set on disk: its manifest, its sample table and positional reads of its tars.

    The table may cover only some shards (`shards=`, `for_rank`): its rows keep their global
    sample ids, and a loader reads the rows it holds. Opening per rank keeps a rank's memory and
    start-up in proportion to its part (the table costs 44 bytes per sample: `ns bench sizes`).
    """

    def __init__(self, directory: str | os.PathLike[str], shards: list[int] | None = None) -> None:
        """Open `directory`; `shards` restricts the table to some shards (each rank reads its own)."""
        self.directory = Path(directory)
        self.manifest = Manifest.load(self.directory)
        everything = range(len(self.manifest.shards))
        self.shard_numbers = list(everything) if shards is None else sorted(set(shards))
        self.table = self._build_table()
        self._files: dict[int, int] = {}

    @classmethod
    def for_rank(cls, directory: str | os.PathLike[str], rank: int, world_size: int) -> ShardSet:
        """Open only the shards holding rank `rank`'s rows (see `sampling.rank_bounds`)."""
        manifest = Manifest.load(Path(directory))
        start, stop = rank_bounds(manifest.num_samples, rank, world_size)
        overlapping = [
            number
            for number, info in enumerate(manifest.shards)
            if info.first_id < stop and info.first_id + info.count > start
        ]
        return cls(directory, shards=overlapping)

    @property
    def total_samples(self) -> int:
        """Samples in the whole set, also when the table holds only some shards."""
        return self.manifest.num_samples

    def _build_table(self) -> SampleTable:
        parts = [self._shard_columns(number) for number in self.shard_numbers]
        columns = (np.concatenate(column) for column in zip(*parts, strict=True))
        return SampleTable(*columns)

    def _shard_columns(self, number: int) -> tuple[np.ndarray, ...]:
        """The `SampleTable` columns of shard `number`, from its index."""
        info = self.manifest.shards[number]
        path = self.directory / info.index
        index = read_index(path)
        count = len(index.ext)
        if count != info.count:
            raise DataError(
                f"{path} lists {count} samples but the manifest says {info.count}; rebuild the "
                "set with `ns shard --overwrite`"
            )
        rows = np.arange(count)
        is_image = np.isin(index.ext, STORED_EXTS)
        if not is_image.any(axis=1).all():
            position = int(np.flatnonzero(~is_image.any(axis=1))[0])
            raise DataError(f"{path}: sample {position} has no image")
        image = is_image.argmax(axis=1)
        is_label = index.ext == "cls"
        has_label = is_label.any(axis=1)
        label = is_label.argmax(axis=1)
        return (
            info.first_id + rows.astype(np.int64),
            np.full(count, number, dtype=np.int32),
            index.offset[rows, image],
            index.size[rows, image],
            np.where(has_label, index.offset[rows, label], -1),
            np.where(has_label, index.size[rows, label], 0),
        )

    def __len__(self) -> int:
        return len(self.table)

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes)

    def require_labels(self) -> None:
        """Raise DataError when the set has no labels (e.g. an unlabeled set given as training data)."""
        if not self.manifest.labeled:
            raise DataError(
                f"{self.directory} has no labels (it was sharded as unlabeled); "
                "pass a labeled shard set (`ns shard` of a class-folder tree or a CSV with labels)"
            )

    def _fd(self, shard: int) -> int:
        fd = self._files.get(shard)
        if fd is None:
            fd = os.open(self.directory / self.manifest.shards[shard].tar, os.O_RDONLY)
            self._files[shard] = fd
        return fd

    def read_image(self, row: int) -> bytes:
        """The encoded image bytes of table row `row`."""
        t = self.table
        return os.pread(
            self._fd(int(t.shard[row])), int(t.image_size[row]), int(t.image_offset[row])
        )

    def read_label(self, row: int) -> int:
        """The class index stored in `KEY.cls` of table row `row` (-1 for unlabeled sets)."""
        t = self.table
        if t.label_offset[row] < 0:
            return -1
        raw = os.pread(
            self._fd(int(t.shard[row])), int(t.label_size[row]), int(t.label_offset[row])
        )
        return int(raw)

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """Every row's class index (int64; -1 when unlabeled), read once: from the set's label
        column when it has one, else from each sample's `.cls` member (one read per sample)."""
        name = self.manifest.labels_file
        if name is None:
            labels = np.full(len(self), -1, dtype=np.int64)
            for row in np.flatnonzero(self.table.label_offset >= 0).tolist():
                labels[row] = self.read_label(row)
            return labels
        path = self.directory / name
        try:
            column = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(
                f"{path} is unreadable ({err}); rebuild the set with `ns shard`"
            ) from None
        if column.shape != (self.total_samples,) or column.dtype.kind != "i":
            raise DataError(
                f"{path} holds {column.dtype} {column.shape}, not one class per sample of the "
                f"{self.total_samples} in the set; rebuild the set with `ns shard --overwrite`"
            )
        return np.asarray(column[self.table.sample_id], dtype=np.int64)

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def __getstate__(self) -> dict[str, object]:
        """Pickled into DataLoader workers without open file descriptors."""
        state = {k: getattr(self, k) for k in ("directory", "manifest", "shard_numbers", "table")}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._files = {}
