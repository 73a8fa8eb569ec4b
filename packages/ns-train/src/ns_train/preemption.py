"""Stop at a step boundary on SIGTERM or Ctrl-C, after a snapshot, so a preempted job resumes.

Schedulers (SLURM, Kubernetes, cloud spot instances) send SIGTERM some seconds before they kill.
While a `stop_requests()` block runs, SIGTERM and SIGINT only set a flag; the training loop
checks it after each step, writes a snapshot and raises `Preempted`, which the CLI turns into
exit code 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C), as shells do. A second
signal stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """The job stopped on a signal after saving a snapshot; rerunning the command resumes it."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """Set by a stop signal; falsy until one arrives."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # asked twice: stop now, without waiting for the step
            raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)
        self.signum = signum


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Catch SIGTERM and SIGINT as a `StopRequest` for the block (main thread only; elsewhere
    signals keep their handlers and the request never fires)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.signal(s, request._handle) for s in STOP_SIGNALS}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
