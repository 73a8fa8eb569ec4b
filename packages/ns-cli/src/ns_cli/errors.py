"""Turn the domain errors of every layer into one line on stderr and exit code 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console

from ns_data.errors import DataError
from ns_models.errors import ModelError
from ns_train.errors import TrainError
from ns_train.preemption import Preempted

DOMAIN_ERRORS = (DataError, ModelError, TrainError)
T = TypeVar("T")


def run_reporting_errors(command: Callable[[], T]) -> T:
    """Call `command`; a domain error (or a missing file) becomes `error: ...` and exit 1.

    Set NS_DEBUG=1 to get the full traceback instead.
    """
    try:
        return command()
    except Preempted as err:  # a snapshot was written: exit as the shell reports the signal
        Console(stderr=True).print(
            f"[bold yellow]stopped:[/] {err}", highlight=False, soft_wrap=True
        )
        sys.exit(err.exit_code)
    except (*DOMAIN_ERRORS, FileNotFoundError) as err:
        if os.environ.get("NS_DEBUG") == "1":
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
