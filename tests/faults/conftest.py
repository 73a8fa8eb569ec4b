"""The fault suite's tools: run `ns` as its own process, kill it, check what it left, fill a disk.

- `start_ns(*args)` runs the real console entry point (`ns_cli.main.main`, argv, exit code,
  stdout/stderr) in a separate process. Commands that import torch are forked from a server that
  imported it once (multiprocessing's forkserver), so a run starts in milliseconds instead of the
  ~20 s an import costs on this 2-core machine; `ns shard` (no torch) starts as
  `python -m ns_cli`. Each run is its own session, so `kill()` reaches its worker processes too.
- `assert_whole_files(root)` opens every file under a final name (tars read to the end, indexes,
  safetensors, JSON, JSON Lines, .npy, PNG) and fails naming the first partial one.
- `small_disk` mounts a tmpfs (as root) and `fill()`s it to a given free space; without mount
  rights it falls back to a file-size limit in the child (writes past it raise EFBIG); otherwise
  the test is skipped. The mechanism is recorded in the report (`record_property`).
- The shared fixtures (`digits`, `teacher`) come from tests/conftest.py, `tiny_config` from testkit.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ns_data.shards.reader import ShardSet
from ns_data.shards.writer import ShardSetWriter
from ns_train.runs.digits import DigitsSplits
from ns_train.trainer import TrainResult

TORCH_FREE = {"shard"}
"""Commands that start fast as a fresh interpreter (they never import torch)."""
PRELOAD = ["ns_cli.main", "ns_data.ingest.pipeline", "ns_train.trainer", "ns_train.labeler"]
PRELOAD += ["ns_train.runs.loop", "ns_train.selection_plan", "ns_train.runs.report"]
_CHILD = """
import os, resource, signal, sys
os.setsid()
for fd, name in ((1, {stdout!r}), (2, {stderr!r})):
    os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
os.chdir({cwd!r})
os.environ.update({env!r})
if {fsize!r} is not None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize!r}, {fsize!r}))
import torch
torch.set_num_threads(1)
sys.argv = ["ns", *{args!r}]
from ns_cli.main import main
main()
"""
ENV = {"NS_DEBUG": "0", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)
_LOGS: list[Path] = []
"""Where the jobs' stdout and stderr go: a folder of the session's pytest temporary directory."""


@pytest.fixture(scope="session", autouse=True)
def _job_logs(tmp_path_factory: pytest.TempPathFactory) -> None:
    _LOGS[:] = [tmp_path_factory.mktemp("ns-jobs")]


@dataclass
class NsJob:
    """One `ns` process: its pid (a session leader), exit code and captured output."""

    args: tuple[str, ...]
    stdout_path: Path
    stderr_path: Path
    _process: multiprocessing.process.BaseProcess | subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal), or None while it runs."""
        if isinstance(self._process, subprocess.Popen):
            return self._process.poll()
        return None if self._process.is_alive() else self._process.exitcode

    def wait(self, timeout: float = 600) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"ns {' '.join(self.args)} ran over {timeout} s")
            time.sleep(0.02)
        return code

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Send `signum` to the whole session (the command and any workers it started)."""
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:  # gone, or not yet a session leader: the process alone
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)
        if signum == signal.SIGKILL:
            self.wait(60)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def start_ns(
    *args: str | os.PathLike[str], cwd: Path | None = None, fsize: int | None = None
) -> NsJob:
    """Start `ns ARGS` in its own process and session; `fsize` caps every file it writes."""
    argv = tuple(str(a) for a in args)
    logs = Path(tempfile.mkdtemp(prefix="ns-job-", dir=_LOGS[0] if _LOGS else None))
    stdout, stderr = logs / "stdout", logs / "stderr"
    workdir = str(cwd or Path.cwd())
    if argv[0] in TORCH_FREE:
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process: multiprocessing.process.BaseProcess | subprocess.Popen[bytes]
            process = subprocess.Popen(
                [sys.executable, "-m", "ns_cli", *argv],
                stdout=out,
                stderr=err,
                cwd=workdir,
                env={**os.environ, **ENV},
                start_new_session=True,
                preexec_fn=None if fsize is None else _limit_files(fsize),
            )
    else:
        code = _CHILD.format(
            stdout=str(stdout),
            stderr=str(stderr),
            cwd=workdir,
            env=ENV,
            fsize=fsize,
            args=argv,
        )
        process = _context.Process(target=exec, args=(code, {"__name__": "__ns_job__"}))
        process.start()
    return NsJob(argv, stdout, stderr, process)


def run_child(code: str, timeout: float = 300) -> int:
    """Run Python `code` in a fresh process forked from the preloaded server; its exit code."""
    process = _context.Process(target=exec, args=(code, {"__name__": "__ns_child__"}))
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        raise AssertionError(f"the child ran over {timeout} s")
    return process.exitcode


def _limit_files(fsize: int) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return limit


def ns(*args: str | os.PathLike[str], timeout: float = 600, **kwargs: object) -> Finished:
    """Run `ns ARGS` to its end in its own process."""
    job = start_ns(*args, **kwargs)  # type: ignore[arg-type]
    code = job.wait(timeout)
    return Finished(code, job.stdout, job.stderr)


def kill_when(
    job: NsJob,
    ready: Callable[[], bool],
    delay: float,
    *,
    signum: int = signal.SIGKILL,
    timeout: float = 300,
) -> bool:
    """Send `signum` to `job` `delay` s after `ready()` first holds (polled every 5 ms); False
    when the job ended before that."""
    deadline = time.monotonic() + timeout
    while not ready():
        if job.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"ns {' '.join(job.args)}: no kill point in time"
        time.sleep(0.005)
    time.sleep(delay)
    finished = job.poll() is not None
    job.kill(signum)
    return not finished


def left_behind(folder: Path) -> str:
    """What a killed job left (file and folder names below `folder`, two levels), for the test
    report: where the kill landed."""
    if not folder.is_dir():
        return "(nothing)"
    names = [
        str(p.relative_to(folder)) for p in sorted(folder.glob("*")) + sorted(folder.glob("*/*"))
    ]
    return ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")


def delay_for(seed: int, low: float, high: float) -> float:
    """A kill delay drawn from a fixed seed (the same draw on every run)."""
    return float(np.random.default_rng(seed).uniform(low, high))


def one_line_error(result: Finished) -> str:
    """The single `error: ...` line a failed command printed (no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


# --- every file under a final name is whole ------------------------------------------------


def is_temporary(relative: Path) -> bool:
    """Names the writers use before renaming into place (never read as results)."""
    for part in relative.parts:
        if ".tmp" in part or part.endswith(".old") or part == "tmp" or part == ".ns-lock":
            return True
    return relative.parts[:1] == ("tensorboard",) or "tensorboard" in relative.parts


def assert_whole_files(root: Path) -> list[Path]:
    """Open every file under a final name below `root`; return them (fails on a partial one)."""
    checked = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        if is_temporary(path.relative_to(root)):
            continue
        try:
            _check_whole(path)
        except Exception as err:
            raise AssertionError(
                f"{path} is visible under its final name but partial: {err}"
            ) from err
        checked.append(path)
    return checked


def _check_whole(path: Path) -> None:
    suffix = path.name.rsplit(".", 1)[-1] if "." in path.name else ""
    if suffix == "tar":
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    data = tar.extractfile(member)
                    assert data is not None and len(data.read()) == member.size
        assert path.stat().st_size % tarfile.RECORDSIZE == 0, "not padded to a full record"
    elif suffix == "idx":
        from ns_data.shards.index import read_index

        read_index(path)
    elif suffix == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                handle.get_tensor(key)
    elif suffix == "json":
        json.loads(path.read_text())
    elif suffix == "jsonl":
        text = path.read_text()
        assert not text or text.endswith("\n"), "a torn last line"
        for line in text.splitlines():
            json.loads(line)
    elif suffix == "npy":
        np.load(path, allow_pickle=False)
    elif suffix == "png":
        from PIL import Image

        with Image.open(path) as image:
            image.load()
    elif suffix in ("md", "txt"):
        path.read_text(encoding="utf-8")


def same_files(a: Path, b: Path, pattern: str = "*") -> dict[str, bytes]:
    """Assert two folders hold byte-identical files matching `pattern`; return them."""
    left = {p.name: p.read_bytes() for p in sorted(Path(a).glob(pattern)) if p.is_file()}
    right = {p.name: p.read_bytes() for p in sorted(Path(b).glob(pattern)) if p.is_file()}
    assert left.keys() == right.keys()
    different = [name for name in left if left[name] != right[name]]
    assert not different, f"files differ: {different}"
    assert left, f"no {pattern} in {a}"
    return left


def same_labels(a: Path, b: Path) -> None:
    """Two pseudo-label folders hold the same labels from the same teacher (its path aside: the
    metadata names the checkpoint folder, which differs between two run directories)."""
    from safetensors import safe_open

    names = sorted(p.name for p in Path(a).glob("*.labels.safetensors"))
    assert names and names == sorted(p.name for p in Path(b).glob("*.labels.safetensors"))
    for name in names:
        contents = []
        for folder in (a, b):
            with safe_open(str(Path(folder) / name), framework="numpy") as handle:
                teacher = json.loads((handle.metadata() or {})["teacher"])
                teacher.pop("checkpoint")
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
            contents.append((teacher, tensors))
        (teacher_a, left), (teacher_b, right) = contents
        assert teacher_a == teacher_b, name
        assert left.keys() == right.keys(), name
        for key in left:
            assert left[key].dtype == right[key].dtype and np.array_equal(left[key], right[key]), (
                f"{name}: {key} differs"
            )


def same_weights(a: Path, b: Path) -> None:
    """Two safetensors files hold equal tensors (bit for bit)."""
    from safetensors.torch import load_file

    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    unequal = [
        k for k in left if not (left[k] == right[k]).all() or left[k].dtype != right[k].dtype
    ]
    assert not unequal, f"{len(unequal)} tensors differ, e.g. {unequal[:3]}"


# --- a disk that really fills --------------------------------------------------------------


def _mount_problem() -> str | None:
    """None when a tmpfs can be mounted here, else why not (`NS_TEST_FULL_DISK=rlimit` forces
    the file-size limit, to try the fallback where mounting works)."""
    if os.environ.get("NS_TEST_FULL_DISK") == "rlimit":
        return "NS_TEST_FULL_DISK=rlimit"
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "not root (or no mount command)"
    probe = Path(tempfile.mkdtemp(prefix="ns-tmpfs-probe-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"mount -t tmpfs failed: {done.stderr.strip()}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    finally:
        probe.rmdir()


@dataclass
class SmallDisk:
    """A folder on a small filesystem (`tmpfs`) or, failing that, under a file-size limit
    (`rlimit-fsize`): `fill(free)` leaves about `free` bytes (tmpfs) or caps each file at
    `largest` bytes (rlimit); `free_up()` gives the room back; pass `fsize` to `start_ns`."""

    path: Path
    mechanism: str
    fsize: int | None = None
    _filler: Path | None = field(default=None, repr=False)

    def fill(self, free: int, largest: int) -> None:
        if self.mechanism == "rlimit-fsize":
            self.fsize = largest
            return
        self.free_up()
        stat = os.statvfs(self.path)
        room = stat.f_bavail * stat.f_frsize - free
        if room > 0:
            self._filler = self.path / ".filler"
            with self._filler.open("wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, room)

    def free_up(self) -> None:
        self.fsize = None
        if self._filler is not None:
            self._filler.unlink(missing_ok=True)
            self._filler = None

    @property
    def free(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize


_MOUNT_PROBLEM: list[str | None] = []


@pytest.fixture
def small_disk(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> Iterator[Callable[[int], SmallDisk]]:
    """`small_disk(size)`: a folder on a `size`-byte tmpfs (or a file-size limit, see SmallDisk)."""
    if not _MOUNT_PROBLEM:
        _MOUNT_PROBLEM.append(_mount_problem())
    problem = _MOUNT_PROBLEM[0]
    mounted: list[Path] = []

    def make(size: int) -> SmallDisk:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if problem is None:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True
            )
            mounted.append(folder)
            mechanism = "tmpfs"
        elif hasattr(resource, "RLIMIT_FSIZE"):
            mechanism = "rlimit-fsize"
        else:
            pytest.skip(f"no way to fill a disk here: {problem}; and no RLIMIT_FSIZE")
        record_property("disk_full_mechanism", mechanism)
        print(f"full disk by {mechanism}" + (f" ({problem})" if problem else ""))
        return SmallDisk(folder, mechanism)

    yield make
    for folder in mounted:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# --- tiny jobs and their uninterrupted results (shared by the kill and full-disk tests) -----

LABEL = ["--backend", "torch", "--device", "cpu", "--workers", "0", "--batch-size", "100"]


@pytest.fixture(scope="session")
def labels_uninterrupted(
    tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits, teacher: TrainResult
) -> Path:
    """`ns label` of the digits' 1,647 unlabeled images (4 shards) by the engine's tiny teacher."""
    out = tmp_path_factory.mktemp("labels")
    result = ns(
        "label",
        "--checkpoint",
        teacher.checkpoint,
        "--unlabeled",
        digits.unlabeled,
        "--out",
        out,
        *LABEL,
    )
    assert result.returncode == 0, result.stderr
    return out


TRAIN = [
    *("--set", "epochs=3.0", "--set", "batch_size=16", "--set", "image_size=32"),
    *("--set", "loader.backend='torch'", "--set", "loader.workers=0", "--set", "device='cpu'"),
    *("--set", "optim.name='adamw'", "--set", "optim.lr_per_2048=0.1"),
    *("--set", "optim.warmup_epochs=0.5", "--set", "ema_decay=0.9", "--set", "noise.flip=false"),
    *("--set", "checkpoint_every=3", "--set", "keep_checkpoints=2"),
]
"""testkit's tiny_config (B0 at 32 px, 3 steps an epoch), snapshots every 3 of 9 steps."""


@pytest.fixture(scope="session")
def trained_uninterrupted(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> Path:
    """`ns train TRAIN` on the digits' 50 labeled images, never interrupted."""
    out = tmp_path_factory.mktemp("train") / "job"
    result = ns("train", "--labeled", digits.labeled, "--out", out, *TRAIN)
    assert result.returncode == 0, result.stderr
    return out


JOB = """
model = "efficientnet_b0"
image_size = 32
batch_size = 16
unlabeled_ratio = 3
ema_decay = 0.9
backend = "torch"
workers = 0
device = "cpu"
eval_every = 100.0
checkpoint_every = 3
keep_checkpoints = 1
noise = {{ flip = false, randaugment_n = 1 }}
optim = {{ name = "adamw", lr_per_2048 = 0.1, warmup_epochs = 0.5 }}
epochs = {epochs}
"""
RUN = """
iterations = 1
threshold = 0.0
filter_balance = false
label_batch_size = 128
students = ["efficientnet_b0"]

[data]
labeled = "{labeled}"
unlabeled = "{unlabeled}"
eval = "{test}"

[teacher]
{teacher}
[student]
{student}
"""


@pytest.fixture(scope="session")
def small_unlabeled(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> Path:
    """The first 240 unlabeled digits, in 2 shards: labeled in well under a second."""
    source = ShardSet(digits.unlabeled)
    out = tmp_path_factory.mktemp("unlabeled") / "unlabeled"
    with ShardSetWriter(out, "unlabeled", classes=None, max_count=120) as writer:
        for row in range(240):
            data = source.read_image(row)
            writer.add(f"u{row:04d}", data, "jpg", size=Image.open(io.BytesIO(data)).size)
    return out


@pytest.fixture(scope="session")
def run_config(
    tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits, small_unlabeled: Path
) -> Path:
    """A teacher of 12 steps, one student of 10 steps (snapshots every 3), no robustness step."""
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(
        RUN.format(
            labeled=digits.labeled,
            unlabeled=small_unlabeled,
            test=digits.test,
            teacher=JOB.format(epochs=4.0),
            student=JOB.format(epochs=2.0),
        )
    )
    return path


@pytest.fixture(scope="session")
def run_uninterrupted(tmp_path_factory: pytest.TempPathFactory, run_config: Path) -> Path:
    """`ns run` of `run_config`, never interrupted."""
    out = tmp_path_factory.mktemp("run") / "run"
    result = ns("run", run_config, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    return out
