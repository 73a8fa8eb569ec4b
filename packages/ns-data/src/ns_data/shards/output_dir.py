"""The folder a shard set is written to: a local path or an fsspec URL, with atomic writes.

Unfinished work lives in `OUT/.ns-shard/` (scan caches, per-shard done markers, temp files); its
presence marks a run that a rerun resumes, and it is deleted when `manifest.json` is written.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ns_data.atomic import naming_path
from ns_data.errors import DataError
from ns_data.job_lock import LOCK_NAME
from ns_data.shards.manifest import MANIFEST_NAME, Manifest

WORK_DIR = ".ns-shard"
REJECTED_NAME = "rejected.jsonl"
_SHARD_FILE = re.compile(r"^.+-\d{6}\.(tar|idx)$")


class OutputDir:
    """A folder on any fsspec filesystem; file names are relative to it."""

    def __init__(self, url: str | os.PathLike[str]) -> None:
        self.url = str(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    @property
    def name(self) -> str:
        return posixpath.basename(self.root.rstrip("/"))

    @property
    def local_path(self) -> Path | None:
        """The folder as a local path, or None on a remote filesystem."""
        return Path(self.root) if isinstance(self.fs, LocalFileSystem) else None

    def path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def exists(self, name: str) -> bool:
        return bool(self.fs.exists(self.path(name)))

    def size(self, name: str) -> int:
        return int(self.fs.size(self.path(name)))

    def read_text(self, name: str) -> str:
        return str(self.fs.cat_file(self.path(name)).decode())

    def remove(self, name: str) -> None:
        if self.exists(name):
            self.fs.rm(self.path(name), recursive=True)

    @contextmanager
    def open_atomic(self, name: str) -> Iterator[BinaryIO]:
        """Write `name` under a temporary name in the work folder, then move it into place."""
        tmp = self.path(f"{WORK_DIR}/tmp/{posixpath.basename(name)}.{os.getpid()}")
        self.fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
        self.fs.makedirs(posixpath.dirname(self.path(name)), exist_ok=True)
        try:
            with naming_path(tmp), self.fs.open(tmp, "wb") as handle:
                yield handle
            self.fs.mv(tmp, self.path(name))
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def write_atomic(self, name: str, data: bytes) -> None:
        with self.open_atomic(name) as handle:
            handle.write(data)

    def prepare(self, overwrite: bool) -> None:
        """Make the folder ready: new, resuming an unfinished run, or replacing a set."""
        if self.exists(MANIFEST_NAME):
            if not overwrite:
                raise DataError(
                    f"{self.url} already holds a shard set; pass --overwrite to replace it"
                )
            manifest = Manifest.from_json(self.read_text(MANIFEST_NAME), self.path(MANIFEST_NAME))
            self.remove(MANIFEST_NAME)
            for shard in manifest.shards:
                self.remove(shard.tar)
                self.remove(shard.index)
            self.remove(REJECTED_NAME)
        elif self.exists(WORK_DIR):
            if overwrite:
                self.remove(WORK_DIR)
        elif self.fs.exists(self.root) and self._entries() - {LOCK_NAME}:
            raise DataError(
                f"{self.url} is not empty and holds no shard set; choose a new or empty folder"
            )
        self.fs.makedirs(self.path(WORK_DIR), exist_ok=True)

    def _entries(self) -> set[str]:
        return {posixpath.basename(e) for e in self.fs.ls(self.root, detail=False)}

    def remove_stale_shards(self, keep: set[str]) -> None:
        """Delete shard files left by an earlier, different plan of an unfinished run."""
        for entry in self.fs.ls(self.root, detail=False):
            name = posixpath.basename(entry)
            if _SHARD_FILE.match(name) and name not in keep:
                self.fs.rm(entry)
