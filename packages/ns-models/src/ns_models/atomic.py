"""Write a file or folder under a temporary name, flush it to disk and rename it into place, so a
crash never leaves half a checkpoint or export under its final name.

The same helper as `ns_data.atomic.atomic_path` (ns_models imports nothing of ours), plus an fsync
of what was written before the rename: checkpoints and exports are the artifacts kept.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, folder: bool = False, sweep: str | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside `path` (`.NAME.tmp-PID`); on success fsync it and rename it
    onto `path`, on error delete it.

    Args:
        path: the file, or with `folder` the folder, to write.
        folder: the temporary path is a new empty folder to fill; a folder already at `path` is
            renamed aside, the new one renamed in, the old one deleted.
        sweep: a glob, in `path`'s folder, of the temporaries of killed writers, deleted first.

    An error raised while writing (a full disk, say) names `path`, never the temporary name:
    safetensors' Rust writer quotes only `(os error N)`, a failed `write` names no file.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if sweep is not None:
        for left in final.parent.glob(sweep):
            _remove(left)
    try:
        try:
            if folder:
                _remove(tmp)  # a dead writer's of the same pid
                tmp.mkdir()
            yield tmp
            for written in sorted(tmp.rglob("*")) if folder else [tmp]:
                if written.is_file():
                    with open(written, "rb") as handle:
                        os.fsync(handle.fileno())
            _rename_into_place(tmp, final)
        except OSError as err:
            named = _naming(err, final, tmp)
            if named is err:
                raise
            raise named from err
        except Exception as err:
            found = _OS_ERROR.search(str(err))
            if found is None:
                raise
            code = int(found[1])
            raise OSError(code, os.strerror(code), str(final)) from err
    finally:
        _remove(tmp)


def _naming(err: OSError, final: Path, tmp: Path) -> OSError:
    """`err`, naming `final` where it names no file or the temporary path (or a file in it)."""
    if err.errno is None:
        return err
    named = err.filename
    if named is None:
        return OSError(err.errno, err.strerror, str(final))
    name = Path(os.fsdecode(named)) if isinstance(named, str | bytes | os.PathLike) else None
    if name is None or not (name == tmp or tmp in name.parents):
        return err
    return OSError(err.errno, err.strerror, str(final / name.relative_to(tmp)))


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
