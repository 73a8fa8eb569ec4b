"""The output lock: a second process is refused with the holder named, a killed holder's lock is
taken over, and two shard runs on one folder no longer race."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ns_data.errors import DataError
from ns_data.ingest.pipeline import ShardConfig, shard_images
from ns_data.job_lock import LOCK_NAME, hold_output_lock
from ns_data.shards.manifest import Manifest

_HOLD = """
import sys, time
from ns_data.job_lock import hold_output_lock
with hold_output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""

# The child says it runs only from its target, that is after its at-fork hooks: killing the
# parent before then would leave the descriptor open in a child that has not yet closed it.
_HOLD_AND_FORK = """
import multiprocessing, sys, time
from ns_data.job_lock import hold_output_lock
def sleep_when_started(started):
    started.set()
    time.sleep(60)
with hold_output_lock(sys.argv[1]):
    fork = multiprocessing.get_context("fork")
    started = fork.Event()
    child = fork.Process(target=sleep_when_started, args=(started,))
    child.start()
    assert started.wait(60)
    print(child.pid, flush=True)
    time.sleep(60)
"""


def start_holder(folder: Path, script: str = _HOLD) -> tuple[subprocess.Popen[str], str]:
    """A python process that holds `folder`'s lock; returns it and the first line it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, "the holder did not take the lock"
    return proc, line


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    proc, _ = start_holder(tmp_path / "out")
    try:
        record = json.loads((tmp_path / "out" / LOCK_NAME).read_text())
        assert record["pid"] == proc.pid and record["host"] == socket.gethostname()
        message = rf"out is in use by ns pid {proc.pid} on host {socket.gethostname()} since "
        with (
            pytest.raises(DataError, match=message + r".*; wait for it or stop it"),
            hold_output_lock(tmp_path / "out"),
        ):
            pass
    finally:
        kill(proc)


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    proc, _ = start_holder(tmp_path / "out")
    kill(proc)
    lock = tmp_path / "out" / LOCK_NAME
    assert json.loads(lock.read_text())["pid"] == proc.pid  # left behind by SIGKILL
    with hold_output_lock(tmp_path / "out"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_a_forked_worker_does_not_keep_the_lock(tmp_path: Path) -> None:
    proc, child = start_holder(tmp_path / "out", _HOLD_AND_FORK)
    try:
        kill(proc)  # its forked child lives on
        with hold_output_lock(tmp_path / "out"):
            pass
    finally:
        os.kill(int(child), signal.SIGKILL)


def test_reentrant_in_one_process_and_released_once(tmp_path: Path) -> None:
    lock = tmp_path / "out" / LOCK_NAME
    with hold_output_lock(tmp_path / "out"):
        with hold_output_lock(f"file://{tmp_path}/out"):
            assert lock.exists()
        assert lock.exists()  # still held: the outer block owns it
        proc = subprocess.run(
            [sys.executable, "-c", _HOLD, str(tmp_path / "out")], capture_output=True, text=True
        )
        assert proc.returncode == 1 and f"in use by ns pid {os.getpid()}" in proc.stderr
    assert not lock.exists()
    with hold_output_lock(tmp_path / "out"):  # free again
        assert lock.exists()


def test_non_holders_and_remote_urls_take_nothing(tmp_path: Path) -> None:
    proc, _ = start_holder(tmp_path / "out")
    try:
        with hold_output_lock(tmp_path / "out", holder=False):  # a rank other than 0
            pass
        with hold_output_lock(tmp_path / "other", holder=False):
            assert not (tmp_path / "other").exists()
    finally:
        kill(proc)
    with hold_output_lock("memory://ns-lock-test/out"):
        pass


_SLOW_SHARD = """
import sys, time
from ns_data.ingest import pipeline as sharding
write = sharding.write_shard
def slow(job):
    time.sleep(0.2)
    return write(job)
sharding.write_shard = slow
sharding.shard_images(sys.argv[1], sys.argv[2], sharding.ShardConfig(max_count=1, workers=1))
"""


def test_a_second_shard_images_on_the_same_output_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 6), (i * 40, 0, 0)).save(buffer, format="JPEG")
        (src / f"{i}.jpg").write_bytes(buffer.getvalue())
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-c", _SLOW_SHARD, str(src), str(out)])
    deadline = time.monotonic() + 60
    while not (out / ".ns-shard").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(DataError, match=rf"out is in use by ns pid {first.pid} on host"):
        shard_images(src, out, ShardConfig(max_count=1, workers=1))
    assert first.wait(timeout=120) == 0
    assert Manifest.load(out).num_samples == 6 and not (out / LOCK_NAME).exists()
