"""SIGKILL at fixed-seed points of `ns shard`, `ns label`, `ns train` and `ns run`, then the same
command again: the result equals an uninterrupted run's, and no file under a final name is ever
partial (checked right after the kill, before the rerun).

Kill points are found by polling for the files a phase writes, then waiting a delay drawn from
the case's seed, so they land in the phase named whatever the machine's load; what the kill left
is in the test report (`left_by_kill`). Also here: SIGTERM during `ns run` (exit 143, snapshot).
SIGTERM and Ctrl-C during `ns train`, and SIGKILL of the training API on both CPU backends, are in
tests/ns_train/test_resume.py.
"""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ns_models.checkpoint import WEIGHTS_FILE
from ns_train.runs.digits import DigitsSplits
from ns_train.trainer import TrainResult

from .conftest import (
    LABEL,
    TRAIN,
    assert_whole_files,
    delay_for,
    kill_when,
    left_behind,
    ns,
    same_files,
    same_labels,
    same_weights,
    start_ns,
)

# --- ns shard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 small noise JPEGs in two class folders: ~0.5 s of scanning, 300 two-image shards."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for number in range(600):
        path = root / ("ab"[number % 2]) / f"img{number:03d}.jpg"
        path.parent.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
        path.write_bytes(buffer.getvalue())
    return root


SHARD = ["--max-count", "2"]


@pytest.fixture(scope="module")
def shards_uninterrupted(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    out = tmp_path_factory.mktemp("clean") / "set"
    result = ns("shard", photos, out, *SHARD, "--workers", "1")
    assert result.returncode == 0, result.stderr
    return out


def _tars(out: Path) -> int:
    return len(list(out.glob("*.tar"))) if out.exists() else 0


@pytest.mark.parametrize(
    ("phase", "seed", "workers"), [("scan", 1, "1"), ("write", 2, "2")], ids=["scan", "write"]
)
def test_shard_killed_then_rerun_writes_the_same_bytes(
    tmp_path: Path,
    photos: Path,
    shards_uninterrupted: Path,
    phase: str,
    seed: int,
    workers: str,
    record_property: Callable[[str, object], None],
) -> None:
    out = tmp_path / "set"
    job = start_ns("shard", photos, out, *SHARD, "--workers", workers)
    if phase == "scan":  # the first of 3 chunks of images is checked, the next ones are not
        scans = out / ".ns-shard" / "scan"
        ready = lambda: scans.is_dir() and any(scans.glob("*.json"))  # noqa: E731
        delay = delay_for(seed, 0.0, 0.05)
    else:  # some of the 300 shards are written
        wanted = int(np.random.default_rng(seed).integers(20, 150))
        ready, delay = (lambda: _tars(out) >= wanted), 0.0
    assert kill_when(job, ready, delay), job.stderr
    record_property("left_by_kill", f"{_tars(out)} tars; {left_behind(out / '.ns-shard')}")
    assert not (out / "manifest.json").exists(), "the kill came after the end"
    assert_whole_files(out)
    rerun = ns("shard", photos, out, *SHARD, "--workers", workers)
    assert rerun.returncode == 0, rerun.stderr
    same_files(out, shards_uninterrupted)
    assert not (out / ".ns-shard").exists()


# --- ns label ------------------------------------------------------------------------------


@pytest.mark.parametrize(("phase", "seed"), [("first-shard", 3), ("later-shard", 4)])
def test_label_killed_then_rerun_writes_the_same_labels(
    tmp_path: Path,
    digits: DigitsSplits,
    teacher: TrainResult,
    labels_uninterrupted: Path,
    phase: str,
    seed: int,
    record_property: Callable[[str, object], None],
) -> None:
    out = tmp_path / "labels"
    command = [
        "label",
        "--checkpoint",
        teacher.checkpoint,
        "--unlabeled",
        digits.unlabeled,
        "--out",
        out,
    ]
    job = start_ns(*command, *LABEL)
    if phase == "first-shard":  # the folder is prepared, the first of 4 shards is being labeled
        ready, delay = (lambda: out.is_dir()), delay_for(seed, 0.1, 0.5)
    else:  # one or two shards are done
        ready = lambda: len(list(out.glob("*.labels.safetensors"))) >= 1  # noqa: E731
        delay = delay_for(seed, 0.0, 0.6)
    assert kill_when(job, ready, delay), job.stderr
    record_property("left_by_kill", left_behind(out))
    assert not (out / "summary.json").exists(), "the kill came after the end"
    assert_whole_files(out)
    rerun = ns(*command, *LABEL)
    assert rerun.returncode == 0, rerun.stderr
    same_files(out, labels_uninterrupted, "*.labels.safetensors")


# --- ns train ------------------------------------------------------------------------------


def _snapshot_writing(out: Path) -> bool:
    return any((out / "state").glob(".step-*")) if (out / "state").is_dir() else False


@pytest.mark.parametrize(
    ("phase", "seed"), [("before-any-snapshot", 5), ("writing-a-snapshot", 6), ("between-steps", 7)]
)
def test_train_killed_then_resumed_ends_with_the_same_weights(
    tmp_path: Path,
    digits: DigitsSplits,
    trained_uninterrupted: Path,
    phase: str,
    seed: int,
    record_property: Callable[[str, object], None],
) -> None:
    out = tmp_path / "job"
    command = ["train", "--labeled", digits.labeled, "--out", out, *TRAIN]
    job = start_ns(*command)
    if phase == "before-any-snapshot":  # the job started and writes its config
        ready, delay = (lambda: (out / "train_config.json").exists()), delay_for(seed, 0.0, 0.3)
    elif phase == "writing-a-snapshot":  # a snapshot's temporary folder is being written
        ready, delay = (lambda: _snapshot_writing(out)), delay_for(seed, 0.0, 0.02)
    else:  # after the first snapshot, some steps later
        ready = lambda: any((out / "state").glob("step-*"))  # noqa: E731
        delay = delay_for(seed, 0.0, 0.5)
    assert kill_when(job, ready, delay), job.stderr
    record_property("left_by_kill", left_behind(out / "state"))
    assert not (out / "checkpoint").exists(), "the kill came after the end"
    assert_whole_files(out)
    resumed = ns(*command, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    same_weights(
        out / "checkpoint" / WEIGHTS_FILE, trained_uninterrupted / "checkpoint" / WEIGHTS_FILE
    )
    steps = [line for line in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    assert len(steps) == len(set(steps)), "a resumed job logs each step once"


def _writing(pattern: str, folder: Path) -> Callable[[], bool]:
    return lambda: folder.is_dir() and any(folder.glob(pattern))


def _temporaries(folder: Path) -> list[str]:
    """Names of the writers' temporary files and folders left below `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


@pytest.mark.parametrize(
    "written",
    ["snapshot", "checkpoint"],
)
def test_a_kill_while_writing_leaves_no_temporary_files_after_the_rerun(
    tmp_path: Path, digits: DigitsSplits, written: str
) -> None:
    out = tmp_path / "job"
    command = ["train", "--labeled", digits.labeled, "--out", out, *TRAIN]
    job = start_ns(*command)
    where = (".step-*.tmp-*", out / "state") if written == "snapshot" else (".checkpoint*", out)
    assert kill_when(job, _writing(*where), 0.0), job.stderr
    left = _temporaries(out)
    if not left:
        pytest.skip(f"the kill came after the {written} was written (nothing to clean up)")
    resumed = ns(*command, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _temporaries(out) == [], f"left after the rerun: {_temporaries(out)}"


# --- ns run --------------------------------------------------------------------------------


def assert_same_run(run: Path, reference: Path) -> None:
    """Same teacher and student weights, pseudo labels, plan and step records (times aside) as
    the uninterrupted run, each step recorded once."""
    for job in ("iter-0/teacher", "iter-1/student"):
        weights = Path(job) / "checkpoint" / WEIGHTS_FILE
        same_weights(run / weights, reference / weights)
    same_labels(run / "iter-1/labels", reference / "iter-1/labels")
    same_files(run / "iter-1/plan", reference / "iter-1/plan", "plan.npy")
    assert _records(run) == _records(reference)
    assert (run / "report.md").exists()


def _records(run: Path) -> list[dict[str, object]]:
    timing = ("wall_s", "images_per_s", "iteration_wall_s")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


def _snapshot_of(state: Path) -> Callable[[], bool]:
    return lambda: state.is_dir() and any(state.glob("step-*"))


@pytest.mark.slow
@pytest.mark.parametrize(("phase", "seed"), [("teacher", 8), ("student", 9)])
def test_run_killed_then_rerun_ends_as_an_uninterrupted_run(
    tmp_path: Path,
    run_config: Path,
    run_uninterrupted: Path,
    phase: str,
    seed: int,
    record_property: Callable[[str, object], None],
) -> None:
    """Killed while the teacher trains (after its first snapshot), or while the student does
    (teacher, labels and plan done): the rerun resumes and ends as an uninterrupted run."""
    out = tmp_path / "run"
    command = ["run", run_config, "--out", out, "--quiet"]
    job = start_ns(*command)
    state = out / ("iter-0/teacher" if phase == "teacher" else "iter-1/student") / "state"
    assert kill_when(job, _snapshot_of(state), delay_for(seed, 0.0, 0.8)), job.stderr
    record_property("left_by_kill", left_behind(out / "iter-1") + "; " + left_behind(state))
    assert not (out / "report.md").exists(), "the kill came after the end"
    assert_whole_files(out)
    rerun = ns(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_run(out, run_uninterrupted)


@pytest.mark.slow
def test_run_sigterm_exits_143_with_a_snapshot_and_the_rerun_matches(
    tmp_path: Path, run_config: Path, run_uninterrupted: Path
) -> None:
    """A scheduler's SIGTERM while `ns run` trains the teacher: it stops after the step in flight
    with a snapshot, exits 128 + 15, and the same command finishes as an uninterrupted run."""
    out = tmp_path / "run"
    command = ["run", run_config, "--out", out, "--quiet"]
    job = start_ns(*command)
    state = out / "iter-0/teacher/state"
    assert kill_when(job, _snapshot_of(state), 0.0, signum=signal.SIGTERM), job.stderr
    assert job.wait(300) == 143, job.stderr
    assert "stopped by SIGTERM" in job.stderr and "Traceback" not in job.stderr
    assert any(state.glob("step-*")) and not (out / "iter-0/teacher/checkpoint").exists()
    assert_whole_files(out)
    rerun = ns(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_run(out, run_uninterrupted)
