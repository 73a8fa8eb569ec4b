"""One ns job per output folder: `hold_output_lock` refuses a second process at once.

The lock is `FOLDER/.ns-lock`, held with `fcntl.flock` for the job's life. The kernel drops a
flock when its holder exits, SIGKILL included, so the file a killed job leaves behind is simply
taken over. The file records the holder's pid, host and start time for the refusal message; it is
deleted on release (the holder deletes it while still holding it, and a process that locked a
deleted file tries again). The lock is re-entrant within a process, and forked children (worker
pools) do not inherit it.

Local folders only: on a remote fsspec URL (s3://, gs://, ...) nothing is locked, since object
stores have no such lock. On a network filesystem the lock is as good as its flock support (NFS
maps flock to its byte-range locks).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ns_data.errors import DataError

LOCK_NAME = ".ns-lock"
_held: dict[Path, int] = {}  # folder -> descriptor of its locked file, in this process


@contextmanager
def hold_output_lock(folder: str | os.PathLike[str], *, holder: bool = True) -> Iterator[None]:
    """Hold `folder`'s lock for the block (creating the folder); DataError if another job has it.

    Args:
        folder: the job's output folder, a path or an fsspec URL (a remote URL is not locked).
        holder: whether this process takes the lock. Under torchrun only rank 0 does
            (`holder=rank == 0`); the other ranks write under rank 0's lock.

    Example:
        with hold_output_lock(out_dir, holder=runtime.is_main):
            ...  # prepare and write out_dir
    """
    path = _local_folder(folder) if holder else None
    if path is None or path in _held:  # remote, not the holder, or already held here
        yield
        return
    _held[path] = _acquire(path)
    try:
        yield
    finally:
        _release(path, _held.pop(path))


def _local_folder(folder: str | os.PathLike[str]) -> Path | None:
    fs, root = fsspec.core.url_to_fs(str(folder))
    return Path(root).resolve() if isinstance(fs, LocalFileSystem) else None


def _acquire(folder: Path) -> int:
    """Lock `folder`'s lock file and write this process's record in it; return its descriptor."""
    lock = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _lock_file(folder, lock)
        try:
            since = datetime.now().astimezone().isoformat(timespec="seconds")
            record = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except OSError:
            os.close(fd)
            raise
    except OSError as err:
        raise DataError(
            f"cannot lock {lock}: {err.strerror}; check that the folder is writable"
        ) from err
    return fd


def _lock_file(folder: Path, lock: Path) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(
                f"{folder} is in use by {_holder(lock)}; wait for it or stop it"
            ) from None
        if _is_file_at(fd, lock):
            return fd
        os.close(fd)  # its holder released and deleted it meanwhile: lock the new one


def _release(folder: Path, fd: int) -> None:
    lock = folder / LOCK_NAME
    try:
        if _is_file_at(fd, lock):
            lock.unlink()
    finally:
        os.close(fd)


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is the file now at `path`."""
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _holder(lock: Path) -> str:
    """Who holds `lock`, from its record (which its holder may be writing this very moment)."""
    for _ in range(20):
        try:
            record = json.loads(lock.read_text())
            return f"ns pid {record['pid']} on host {record['host']} since {record['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "another ns process"


def _forget_in_child() -> None:
    """A forked child holds no lock: close its copies of the parent's descriptors."""
    for fd in _held.values():
        os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
