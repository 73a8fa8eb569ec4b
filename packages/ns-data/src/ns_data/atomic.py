"""Write files under a temporary name and rename them into place, so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it.

    An OSError raised while writing (a full disk, say) names `path`: a failed `write` names no
    file, and the temporary name means nothing to the user.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as err:
        if err.errno is None or err.filename not in (None, str(tmp)):
            raise
        raise OSError(err.errno, err.strerror, str(final)) from err
    finally:
        tmp.unlink(missing_ok=True)


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextmanager
def naming_path(path: str | os.PathLike[str]) -> Iterator[None]:
    """Let a write error that names no file name `path`: an OSError without a file name, or the
    error of a Rust writer (safetensors) that quotes its errno as `(os error 28)`."""
    try:
        yield
    except OSError as err:
        if err.filename is not None:
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
