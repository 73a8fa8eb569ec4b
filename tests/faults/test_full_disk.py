"""A disk that fills up under each writer: shards, pseudo labels, snapshots, checkpoints, the report.

Each time: one line `error: no space left on device writing PATH; free space and rerun ...`, exit
code 1, what was finished before stays whole (every file under a final name opens), and the same
command, rerun once there is room, completes with the result of a run that never failed.

The disk really fills: a small tmpfs is mounted (root), filled to a few bytes more than the step
before the failure needs; without mount rights each file is capped with RLIMIT_FSIZE instead
(EFBIG). `small_disk` records which in the test report (`disk_full_mechanism`).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ns_models.checkpoint import WEIGHTS_FILE
from ns_train.runs.digits import DigitsSplits
from ns_train.state import load_snapshot
from ns_train.trainer import TrainResult

from .conftest import (
    LABEL,
    TRAIN,
    Finished,
    SmallDisk,
    assert_whole_files,
    ns,
    one_line_error,
    same_files,
    same_weights,
)

Disk = Callable[[int], SmallDisk]


def disk_full(result: Finished, disk: SmallDisk, folder: Path) -> str:
    """The one-line error of a command stopped by the full disk, naming a file in `folder`."""
    line = one_line_error(result)
    expected = "no space left on device" if disk.mechanism == "tmpfs" else "file too large"
    assert expected in line and "free space and rerun" in line, line
    assert f"writing {folder}/" in line, line
    return line


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --- ns shard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 noise JPEGs (~6 KB each): 10 shards of 4."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(1)
    for number in range(40):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
        (root / f"p{number:02d}.jpg").write_bytes(buffer.getvalue())
    return root


@pytest.fixture(scope="module")
def shards_uninterrupted(tmp_path_factory: pytest.TempPathFactory, pictures: Path) -> Path:
    reference = tmp_path_factory.mktemp("shards") / "set"
    assert ns("shard", pictures, reference, "--max-count", "4", "--workers", "1").returncode == 0
    return reference


def test_shard_on_a_full_disk(small_disk: Disk, pictures: Path, shards_uninterrupted: Path) -> None:
    """Room for three of the 10 shards: they stay, whole; the rerun writes the other seven."""
    disk = small_disk(1 << 20)
    out = disk.path / "set"
    reference = shards_uninterrupted
    tar = min(p.stat().st_size for p in reference.glob("*.tar"))
    disk.fill(free=3 * tar + 24 * 1024, largest=tar - 1)
    command = ["shard", pictures, out, "--max-count", "4", "--workers", "1"]
    failed = ns(*command, fsize=disk.fsize)
    disk_full(failed, disk, out)
    assert_whole_files(out)
    if disk.mechanism == "tmpfs":  # some shards were finished before the disk filled
        finished = sorted(out.glob("*.tar"))
        assert finished, "no shard was finished before the disk filled"
        for tar_path in finished:
            assert tar_path.read_bytes() == (reference / tar_path.name).read_bytes()
    disk.free_up()
    rerun = ns(*command)
    assert rerun.returncode == 0, rerun.stderr
    same_files(out, reference)


# --- ns label ------------------------------------------------------------------------------


def test_label_on_a_full_disk(
    small_disk: Disk,
    digits: DigitsSplits,
    teacher: TrainResult,
    labels_uninterrupted: Path,
) -> None:
    """Room for one labels file of four: the first stays, the rerun writes the other three."""
    disk = small_disk(1 << 20)
    out = disk.path / "labels"
    one = (labels_uninterrupted / "unlabeled-000000.labels.safetensors").stat().st_size
    disk.fill(free=one + one // 2, largest=one // 2)
    command = [
        "label",
        "--checkpoint",
        teacher.checkpoint,
        "--unlabeled",
        digits.unlabeled,
        "--out",
        out,
    ]
    disk_full(ns(*command, *LABEL, fsize=disk.fsize), disk, out)
    assert_whole_files(out)
    if disk.mechanism == "tmpfs":
        assert [p.name for p in out.glob("*.labels.safetensors")] == [
            "unlabeled-000000.labels.safetensors"
        ]
    disk.free_up()
    rerun = ns(*command, *LABEL)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 already done" in rerun.stdout or disk.mechanism != "tmpfs", rerun.stdout
    same_files(out, labels_uninterrupted, "*.labels.safetensors")


# --- ns train: snapshots and the checkpoint ------------------------------------------------


@pytest.fixture(scope="module")
def snapshot_bytes(trained_uninterrupted: Path) -> int:
    return du(next((trained_uninterrupted / "state").glob("step-*")))


def test_train_snapshot_on_a_full_disk(
    small_disk: Disk, digits: DigitsSplits, trained_uninterrupted: Path, snapshot_bytes: int
) -> None:
    """Room for one snapshot and a half: the one of step 3 stays loadable, the one of step 6
    fails, and `--resume` once there is room ends with the uninterrupted job's weights."""
    disk = small_disk(4 * snapshot_bytes)
    out = disk.path / "job"
    disk.fill(free=snapshot_bytes * 3 // 2, largest=snapshot_bytes // 3)
    command = ["train", "--labeled", digits.labeled, "--out", out, *TRAIN]
    disk_full(ns(*command, fsize=disk.fsize), disk, out)
    assert_whole_files(out)
    assert not (out / "checkpoint").exists()
    if disk.mechanism == "tmpfs":
        assert [p.name for p in (out / "state").glob("step-*")] == ["step-00000003"]
        assert load_snapshot(out / "state" / "step-00000003").step == 3
    disk.free_up()
    resumed = ns(*command, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    weights = Path("checkpoint") / WEIGHTS_FILE
    same_weights(out / weights, trained_uninterrupted / weights)


def test_train_checkpoint_on_a_full_disk(
    small_disk: Disk, digits: DigitsSplits, trained_uninterrupted: Path, snapshot_bytes: int
) -> None:
    """Snapshots fit, the final checkpoint does not: the last snapshot stays loadable, no partial
    checkpoint is visible, and `--resume` writes the checkpoint (without training again)."""
    weights_bytes = (trained_uninterrupted / "checkpoint" / WEIGHTS_FILE).stat().st_size
    disk = small_disk(3 * snapshot_bytes)
    out = disk.path / "job"
    disk.fill(free=snapshot_bytes + weights_bytes // 2, largest=weights_bytes // 2)
    command = [
        "train",
        "--labeled",
        digits.labeled,
        "--out",
        out,
        *TRAIN,
        "--set",
        "checkpoint_every=9",
    ]
    disk_full(ns(*command, fsize=disk.fsize), disk, out)
    assert_whole_files(out)
    assert not (out / "checkpoint").exists()
    if disk.mechanism == "tmpfs":
        assert load_snapshot(out / "state" / "step-00000009").step == 9
    disk.free_up()
    resumed = ns(*command, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    weights = Path("checkpoint") / WEIGHTS_FILE
    same_weights(out / weights, trained_uninterrupted / weights)


# --- ns run: the report --------------------------------------------------------------------


def test_run_report_on_a_full_disk(
    small_disk: Disk, run_config: Path, run_uninterrupted: Path
) -> None:
    """A finished run whose report is rewritten on a full disk: every step is skipped, the report
    fails with the one-line error, the run's checkpoints and records stay whole, and the rerun
    once there is room writes the report."""
    disk = small_disk(64 << 20)
    out = disk.path / "run"
    shutil.copytree(run_uninterrupted, out, ignore=shutil.ignore_patterns("state", "tensorboard"))
    report = (out / "report.md").read_text()
    for path in [out / "report.md", *out.glob("*.png")]:
        path.unlink()
    disk.fill(free=4096, largest=2048)
    command = ["run", run_config, "--out", out, "--quiet"]
    disk_full(ns(*command, fsize=disk.fsize), disk, out)
    assert_whole_files(out)
    disk.free_up()
    rerun = ns(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "report.md").read_text() == report.replace(str(run_uninterrupted), str(out))
