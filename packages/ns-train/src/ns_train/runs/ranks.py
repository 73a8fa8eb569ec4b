"""Checks that every rank of an `ns run` under torchrun runs the same job in the same folder.

Run at the start, before any work, so that a mistake in a cluster launch costs seconds and says
which rank is off: another config, a batch that does not split, a run directory that is not the
same folder on every node.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

from ns_data.atomic import atomic_path
from ns_train.errors import TrainError
from ns_train.ranks import gather, on_main
from ns_train.runs.config import RunConfig
from ns_train.runs.folder import RunLayout, config_differences
from ns_train.runtime import Runtime

RANKS_FILE = ".ns-ranks"
"""Written by rank 0 in the run directory; every rank must read the same token there."""


def check_ranks(runtime: Runtime, config: RunConfig, settings: dict[str, Any], out: Path) -> None:
    """Refuse a launch whose ranks differ in config, or whose global batches do not split."""
    for name, job in (("teacher", config.teacher), ("student", config.student)):
        if job.batch_size % runtime.world_size:
            raise TrainError(
                f"{name}.batch_size {job.batch_size} does not divide across {runtime.world_size} "
                f"ranks; use a multiple of {runtime.world_size} (the global batch is kept "
                "whatever the number of ranks)"
            )
    views = gather(runtime, {"config": settings, "out": str(out), "host": socket.gethostname()})
    first = views[0]
    for rank, view in enumerate(views[1:], start=1):
        changed = config_differences(first["config"], view["config"])
        if changed:
            raise TrainError(
                f"rank {rank} on {view['host']} has another config than rank 0 on "
                f"{first['host']} (differs in {', '.join(changed[:4])}): start every rank with "
                "the same command and config file"
            )


def check_shared_folder(runtime: Runtime, layout: RunLayout) -> None:
    """Refuse a run directory that is not one folder for every rank (a path that differs, or a
    local disk where a shared file system is needed): rank 0 writes a token, all must read it."""
    if not runtime.distributed:
        return
    token = on_main(runtime, lambda: _write_token(layout.root / RANKS_FILE))
    path = layout.root / RANKS_FILE
    seen = gather(
        runtime,
        {
            "token": path.read_text() if path.is_file() else None,
            "out": str(layout.root.absolute()),
            "host": socket.gethostname(),
        },
    )
    for rank, view in enumerate(seen):
        if view["token"] != token:
            raise TrainError(
                f"the run directory {view['out']} of rank {rank} on {view['host']} is not the "
                f"folder {seen[0]['out']} that rank 0 on {seen[0]['host']} writes to: give every "
                "rank the same --out on a file system that every node mounts"
            )


def _write_token(path: Path) -> str:
    token = uuid.uuid4().hex
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(token)
    return token
