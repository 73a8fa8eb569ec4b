"""Turn the domain errors of every layer into one line on stderr and exit code 1, in one place:
the app's group (`ReportingGroup`) runs every command through `run_reporting_errors`, so commands
just raise."""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from ns_data.errors import DataError
from ns_models.errors import ModelError
from ns_train.errors import TrainError
from ns_train.preemption import Preempted

DOMAIN_ERRORS = (DataError, ModelError, TrainError)
DISK_FULL = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large (past the filesystem's or the process's file-size limit)",
    errno.EDQUOT: "disk quota exceeded",
}
"""Write errors that mean "make room": the command can be rerun once there is."""
T = TypeVar("T")
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def disk_full_errno(err: BaseException) -> int | None:
    """The errno of a write that failed for lack of room: an OSError's, or the one safetensors'
    writer (Rust, raising SafetensorError) quotes as `(os error 28)`; None for other errors."""
    if isinstance(err, OSError):
        return err.errno if err.errno in DISK_FULL else None
    safetensors = sys.modules.get("safetensors")
    if safetensors is not None and isinstance(err, safetensors.SafetensorError):
        found = _RUST_OS_ERROR.search(str(err))
        code = int(found[1]) if found else None
        return code if code in DISK_FULL else None
    return None


def disk_full_message(err: BaseException) -> str:
    """`no space left on device writing PATH; free space and rerun ...` (PATH when known)."""
    code = disk_full_errno(err)
    assert code is not None
    path = err.filename if isinstance(err, OSError) else None
    where = f" writing {path}" if path else " while writing the output (the error names no file)"
    return f"{DISK_FULL[code]}{where}; free space and rerun the same command to continue"


def run_reporting_errors(command: Callable[[], T]) -> T:
    """Call `command`; a domain error, a missing file or a full disk becomes `error: ...` and
    exit 1.

    Set NS_DEBUG=1 to get the full traceback instead.
    """
    try:
        return command()
    except Preempted as err:  # a snapshot was written: exit as the shell reports the signal
        _print(f"[bold yellow]stopped:[/] {escape(str(err))}")
        sys.exit(err.exit_code)
    except (*DOMAIN_ERRORS, FileNotFoundError) as err:
        if os.environ.get("NS_DEBUG") == "1":
            raise
        _print(f"[bold red]error:[/] {escape(str(err))}")
        sys.exit(1)
    except Exception as err:
        if disk_full_errno(err) is None or os.environ.get("NS_DEBUG") == "1":
            raise
        _print(f"[bold red]error:[/] {escape(disk_full_message(err))}")
        sys.exit(1)


class ReportingGroup(TyperGroup):
    """The `ns` group: each command runs inside `run_reporting_errors` (the console entry point
    and `typer.testing.CliRunner` alike)."""

    def invoke(self, ctx: Any) -> Any:  # click's Context, which typer vendors
        invoke = super().invoke
        return run_reporting_errors(lambda: invoke(ctx))


def _print(markup: str) -> None:
    """One line on stderr. Messages are escaped and emoji codes left alone: a path like
    `[raw]/x.jpg` is text, not markup, and `part.tar:b:` is not `part.tar🅱`."""
    Console(stderr=True).print(markup, highlight=False, soft_wrap=True, emoji=False)
