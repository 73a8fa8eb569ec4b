"""The shard sets of `ns run`: a shard set is read as it is, a folder of images is sharded first.

    shards = RunShards(Path("runs/mine/shards"))
    labeled = shards.labeled(Path("photos/train"))              # → runs/mine/shards/labeled
    val = shards.labeled(Path("photos/val"), "eval", like=labeled)

Each role (labeled, unlabeled, eval, unlabeled-truth) is sharded once: a finished set is reused on
every rerun and by every run that shares the folder; one made from another source is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ns_data.atomic import write_json
from ns_data.errors import DataError
from ns_data.ingest.pipeline import ShardConfig, shard_images
from ns_data.shards.manifest import MANIFEST_NAME, Manifest
from ns_train.errors import TrainError

SOURCE_FILE = "source.json"
"""Beside each set the run made: the source it was sharded from."""


class RunShards:
    """Shard sets under `root`, one folder per role."""

    def __init__(
        self,
        root: Path,
        show_progress: bool = False,
        notify: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.root, self.show_progress, self.notify = Path(root), show_progress, notify

    def labeled(self, source: Path, role: str = "labeled", like: Path | None = None) -> Path:
        """A labeled set; `like`: a set whose class names and order this one must share (an eval
        folder that lacks some classes still gets the labeled set's indices)."""
        if like is None:
            return self._set(source, role, ShardConfig(kind="auto"))
        classes = self.root / f"{role}-classes.txt"
        if not _is_shard_set(source):
            self.root.mkdir(parents=True, exist_ok=True)
            classes.write_text("\n".join(Manifest.load(like).classes) + "\n")
        return self._set(source, role, ShardConfig(kind="auto", classes_file=classes))

    def unlabeled(self, source: Path) -> Path:
        """An unlabeled set: every image of a folder, class folders or not."""
        return self._set(
            source, "unlabeled", ShardConfig(kind="folder" if source.is_dir() else "auto")
        )

    def _set(self, source: Path, role: str, config: ShardConfig) -> Path:
        if _is_shard_set(source):
            Manifest.load(source)  # an unreadable manifest fails here, naming it
            return source
        if not source.exists():
            raise TrainError(
                f"data.{role.replace('-', '_')}: {source} does not exist; name a shard set, an "
                "image folder or a CSV/JSONL list"
            )
        out = self.root / role
        given = str(source.resolve())
        if _is_shard_set(out):
            made_from = json.loads((out / SOURCE_FILE).read_text())["source"]
            if made_from != given:
                raise TrainError(
                    f"{out} was sharded from {made_from}, the config names {given}: delete {out} "
                    "to shard the new source, or set data.shards to another folder"
                )
            self.notify(f"{role}: {out} sharded before, reused")
            return out
        self.notify(f"{role}: sharding {source} → {out}")
        try:
            result = shard_images(source, out, config, progress=self.show_progress)
        except DataError as err:
            raise TrainError(f"data.{role.replace('-', '_')}: {err}") from err
        write_json(out / SOURCE_FILE, {"source": given, "rejected": result.rejected})
        self.notify(f"{role}: {result.manifest.num_samples} images in {out}")
        return out


def _is_shard_set(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file()
