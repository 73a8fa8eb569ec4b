"""`label()` on real digits: coverage, determinism, resume after SIGKILL, torchrun, refusals."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ns_data.errors import DataError
from ns_data.labels.store import SUFFIX, PseudoLabels
from ns_data.shards.reader import ShardSet
from ns_train.config import TrainConfig
from ns_train.data import TrainInputs
from ns_train.errors import TrainError
from ns_train.labeler import checkpoint_id, label
from ns_train.runs.digits import DigitsSplits, write_digits
from ns_train.trainer import train

from .conftest import torchrun_ns

FAST = {"backend": "torch", "device": "cpu", "workers": 0, "show_progress": False}


def small_digits(out: Path) -> DigitsSplits:
    """About 150 unlabeled digits in 4 shards of at most 40; 5 labels per class."""
    return write_digits(out, labels_per_class=5, test_per_class=160, max_count=40)


def tiny_teacher(sets: DigitsSplits, out: Path) -> Path:
    """A B0 checkpoint at 32 px after one short epoch (seconds on a CPU)."""
    config = TrainConfig(
        model="efficientnet_b0", image_size=32, epochs=1, batch_size=16, ema_decay=0.9,
        backend="torch", workers=0, device="cpu",
    )  # fmt: skip
    return train(config, TrainInputs(labeled=sets.labeled), out, show_progress=False).checkpoint


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> DigitsSplits:
    return small_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory, sets: DigitsSplits) -> Path:
    return tiny_teacher(sets, tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory, sets: DigitsSplits, teacher: Path) -> Path:
    out = tmp_path_factory.mktemp("labels") / "labels"
    label(teacher, sets.unlabeled, out, batch_size=16, **FAST)
    return out


def label_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob(f"*{SUFFIX}"))}


def test_every_sample_gets_topk_labels_and_the_teacher_id(
    labels: Path, sets: DigitsSplits, teacher: Path
) -> None:
    store = PseudoLabels(labels)
    data = ShardSet(sets.unlabeled)
    assert (store.sample_id == data.table.sample_id).all()
    assert store.topk_class.shape == (len(data), 10) and store.topk_prob.dtype == "float16"
    assert store.teacher.teacher_id == checkpoint_id(teacher) and store.teacher.topk == 10
    assert len(label_files(labels)) == len(data.manifest.shards)
    summary = json.loads((labels / "summary.json").read_text())
    assert summary["samples"] == len(data) and summary["unreadable"] == 0
    assert (labels / "pseudo_labels.png").stat().st_size > 0


def test_dense_targets_follow_the_top_k_of_each_id(labels: Path) -> None:
    store = PseudoLabels(labels)
    ids = store.sample_id[[5, 0, 17]]  # any order, host numpy or tensor
    soft = store.dense(torch.from_numpy(ids))
    rows = store.rows_of(ids)
    assert soft.shape == (3, store.num_classes) and torch.allclose(soft.sum(1), torch.ones(3))
    classes = torch.from_numpy(store.topk_class[rows].astype("int64"))
    probs = torch.from_numpy(store.topk_prob[rows].astype("float32"))
    assert torch.allclose(soft.gather(1, classes), probs / probs.sum(1, keepdim=True))
    hard = store.dense(ids, hard=True)
    assert torch.equal(hard.gather(1, classes[:, :1]), torch.ones(3, 1))
    assert torch.equal(hard.sum(1), torch.ones(3))
    with pytest.raises(DataError, match="has no pseudo label"):
        store.dense(np.array([10**9]))


def test_a_rank_loads_only_its_shards_labels(labels: Path, sets: DigitsSplits) -> None:
    part = ShardSet.for_rank(sets.unlabeled, 1, 2)
    tars = [part.manifest.shards[n].tar for n in part.shard_numbers]
    store = PseudoLabels(labels, tars)
    assert (store.sample_id == part.table.sample_id).all()
    with pytest.raises(DataError, match=r"has no nowhere-000000\.labels\.safetensors"):
        PseudoLabels(labels, ["nowhere-000000.tar"])


def test_the_unnoised_teacher_labels_identically_twice(
    labels: Path, sets: DigitsSplits, teacher: Path, tmp_path: Path
) -> None:
    label(teacher, sets.unlabeled, tmp_path, batch_size=16, **FAST)
    assert label_files(tmp_path) == label_files(labels)


def test_a_rerun_labels_only_missing_shards(
    labels: Path, sets: DigitsSplits, teacher: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels"
    shutil.copytree(labels, out)
    (out / f"unlabeled-000002{SUFFIX}").unlink()
    summary = label(teacher, sets.unlabeled, out, batch_size=16, **FAST)
    assert (summary.shards_labeled, summary.shards_skipped) == (1, 3)
    assert label_files(out) == label_files(labels)


def test_another_teachers_folder_is_refused_unless_overwrite(
    labels: Path, sets: DigitsSplits, teacher: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(teacher, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "extra": {"retrained": True}}))
    out = tmp_path / "labels"
    shutil.copytree(labels, out)
    with pytest.raises(TrainError, match=r"another teacher.*--overwrite"):
        label(other, sets.unlabeled, out, **FAST)
    with pytest.raises(TrainError, match="another teacher"):
        label(teacher, sets.unlabeled, out, temperature=2.0, **FAST)
    summary = label(other, sets.unlabeled, out, overwrite=True, **FAST)
    assert summary.shards_labeled == 4
    assert PseudoLabels(out).teacher.teacher_id == checkpoint_id(other)


def test_labels_of_another_set_in_the_folder_are_refused(
    labels: Path, sets: DigitsSplits, teacher: Path
) -> None:
    with pytest.raises(TrainError, match=r"not in .*test"):
        label(teacher, sets.test, labels, **FAST)


def test_bad_settings_are_refused(sets: DigitsSplits, teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="temperature"):
        label(teacher, sets.unlabeled, tmp_path, temperature=0.0, **FAST)
    with pytest.raises(TrainError, match="topk"):
        label(teacher, sets.unlabeled, tmp_path, topk=0, **FAST)


def cli(teacher: Path, data: Path, out: Path) -> list[str]:
    return [
        "label", "--teacher", str(teacher), "--data", str(data), "--out", str(out),
        "--batch-size", "16", "--backend", "torch", "--device", "cpu", "--workers", "0",
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_rerun_matches_an_uninterrupted_run(
    labels: Path, sets: DigitsSplits, teacher: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels"
    job = subprocess.Popen([sys.executable, "-m", "ns_cli", *cli(teacher, sets.unlabeled, out)])
    deadline = time.monotonic() + 300
    while not list(out.glob(f"*{SUFFIX}")) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    finished = len(label_files(out))
    assert finished >= 1, "the job was killed before it wrote a shard"
    rerun = subprocess.run([sys.executable, "-m", "ns_cli", *cli(teacher, sets.unlabeled, out)])
    assert rerun.returncode == 0
    assert label_files(out) == label_files(labels)
    assert not list(out.glob(".*.tmp-*"))


@pytest.mark.slow
def test_torchrun_two_ranks_write_the_same_labels(
    labels: Path, sets: DigitsSplits, teacher: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels"
    job = torchrun_ns(*cli(teacher, sets.unlabeled, out))
    assert job.returncode == 0, job.stderr[-2000:]
    assert label_files(out) == label_files(labels)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_labeled"] == 4 and summary["samples"] == len(ShardSet(sets.unlabeled))
