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
from testkit import CPU_LABELS, torchrun_ns

from ns_data.errors import DataError
from ns_data.labels.store import SUFFIX, PseudoLabels
from ns_data.shards.reader import ShardSet
from ns_train.config import replace
from ns_train.errors import TrainError
from ns_train.labeler import checkpoint_id, label
from ns_train.runs.digits import DigitsSplits

SMALL_BATCHES = replace(CPU_LABELS, batch_size=16)
"""How the `small_labels` fixture was labeled."""


def run_label(teacher: Path, data: Path, out: Path, overwrite: bool = False, **changes: object):
    """`label()` with `SMALL_BATCHES`, some fields changed, no progress bar."""
    config = replace(SMALL_BATCHES, **changes)
    return label(teacher, data, out, config, overwrite=overwrite, show_progress=False)


@pytest.fixture
def sets(small_sets: DigitsSplits) -> DigitsSplits:
    return small_sets


@pytest.fixture
def teacher(small_teacher: Path) -> Path:
    return small_teacher


@pytest.fixture
def labels(small_labels: Path) -> Path:
    return small_labels


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
    run_label(teacher, sets.unlabeled, tmp_path)
    assert label_files(tmp_path) == label_files(labels)


def test_the_old_keywords_label_as_a_label_config_does(
    labels: Path, sets: DigitsSplits, teacher: Path, tmp_path: Path
) -> None:
    """ns 0.2's `label(..., batch_size=16, backend=...)` still works for one version, warning."""
    old = {"batch_size": 16, "backend": "torch", "device": "cpu", "workers": 0}
    with pytest.warns(DeprecationWarning, match="LabelConfig"):
        label(teacher, sets.unlabeled, tmp_path, show_progress=False, **old)
    assert label_files(tmp_path) == label_files(labels)
    with pytest.raises(TypeError, match="batch"):
        label(teacher, sets.unlabeled, tmp_path, batch=16)


def test_a_rerun_labels_only_missing_shards(
    labels: Path, sets: DigitsSplits, teacher: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels"
    shutil.copytree(labels, out)
    (out / f"unlabeled-000002{SUFFIX}").unlink()
    summary = run_label(teacher, sets.unlabeled, out)
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
        run_label(other, sets.unlabeled, out)
    with pytest.raises(TrainError, match="another teacher"):
        run_label(teacher, sets.unlabeled, out, temperature=2.0)
    summary = run_label(other, sets.unlabeled, out, overwrite=True)
    assert summary.shards_labeled == 4
    assert PseudoLabels(out).teacher.teacher_id == checkpoint_id(other)


def test_labels_of_another_set_in_the_folder_are_refused(
    labels: Path, sets: DigitsSplits, teacher: Path
) -> None:
    with pytest.raises(TrainError, match=r"not in .*test"):
        run_label(teacher, sets.test, labels)


def test_bad_settings_are_refused(sets: DigitsSplits, teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="temperature"):
        run_label(teacher, sets.unlabeled, tmp_path, temperature=0.0)
    with pytest.raises(TrainError, match="topk"):
        run_label(teacher, sets.unlabeled, tmp_path, topk=0)


def cli(teacher: Path, data: Path, out: Path) -> list[str]:
    return [
        "label", "--checkpoint", str(teacher), "--unlabeled", str(data), "--out", str(out),
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
