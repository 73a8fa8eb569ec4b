"""Write files and folders under a temporary name and rename them into place, so a crash never
leaves half of one under its final name. (ns_models, which imports nothing of ours, has the same
helper for checkpoints and exports in `ns_models.atomic`.)"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, folder: bool = False, sweep: str | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside `path` (`.NAME.tmp-PID`); on success rename it onto `path`,
    on error delete it.

    Args:
        path: the file, or with `folder` the folder, to write.
        folder: the temporary path is a new empty folder to fill; a folder already at `path` is
            renamed aside, the new one renamed in, the old one deleted.
        sweep: a glob, in `path`'s folder, of the temporaries of killed writers, deleted first.
            Only where a single job writes the folder (a job lock), never a live writer's.

    An error raised while writing (a full disk, say) names `path`: a failed `write` names no
    file, safetensors' Rust writer quotes only `(os error N)`, and the temporary name means
    nothing to the user.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if sweep is not None:
        for left in final.parent.glob(sweep):
            _remove(left)
    try:
        with _naming(final, tmp):
            if folder:
                _remove(tmp)  # a dead writer's of the same pid
                tmp.mkdir()
            yield tmp
            _rename_into_place(tmp, final)
    finally:
        _remove(tmp)


def _rename_into_place(tmp: Path, final: Path) -> None:
    if not (final.is_dir() and not final.is_symlink()):
        os.replace(tmp, final)
        return
    old = final.with_name(f"{tmp.name}.old")
    _remove(old)
    final.rename(old)
    tmp.rename(final)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def _naming(final: Path, tmp: Path) -> Iterator[None]:
    """`naming_path(final)`, and an error naming the temporary path (or a file in it) names the
    final one."""
    try:
        with naming_path(final):
            yield
    except OSError as err:
        named = err.filename
        name = Path(os.fsdecode(named)) if isinstance(named, str | bytes | os.PathLike) else None
        if err.errno is None or name is None or not (name == tmp or tmp in name.parents):
            raise
        raise OSError(err.errno, err.strerror, str(final / name.relative_to(tmp))) from err


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextmanager
def naming_path(path: str | os.PathLike[str]) -> Iterator[None]:
    """Let a write error that names no file name `path`: an OSError without a file name, or the
    error of a Rust writer (safetensors) that quotes its errno as `(os error 28)`."""
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror, os.fspath(path)) from err
    except Exception as err:
        found = _OS_ERROR.search(str(err))
        if found is None:
            raise
        code = int(found[1])
        raise OSError(code, os.strerror(code), os.fspath(path)) from err


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
