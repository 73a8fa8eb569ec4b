"""Fixtures shared across test folders, made once per session: the digit shard sets, a tiny
teacher and its pseudo labels. Imports of the engine happen inside the fixtures, so the ns_data
and ns_models tests still run alone (`make isolated`) where ns_train is not installed."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ns_train.runs.digits import DigitsSplits
    from ns_train.trainer import TrainResult


def _share_the_cores() -> None:
    """Under pytest-xdist (`make test` runs `-n auto`) each worker's torch, and every process it
    starts, gets its share of the cores, so that N workers do not each run N spinning threads.
    (Counted here, not with `ns_data.cpus`: the ns_models tests run where ns_data is absent.)"""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = len(os.sched_getaffinity(0)) // workers
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, share)))


_share_the_cores()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most slow tests come first (order within a file kept): under `--dist
    loadfile` the longest files start at once and the short ones fill the gaps at the end."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsSplits:
    """The digits with 5 labels and 10 test images per class (1,247 unlabeled)."""
    from ns_train.runs.digits import write_digits

    return write_digits(tmp_path_factory.mktemp("digits"), labels_per_class=5, test_per_class=10)


@pytest.fixture(scope="session")
def teacher(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> TrainResult:
    """`tiny_config()` trained on `digits`, evaluated on its test set."""
    from testkit import tiny_config

    from ns_train.data import TrainInputs
    from ns_train.trainer import train

    inputs = TrainInputs(labeled=digits.labeled, eval_set=digits.test)
    return train(tiny_config(), inputs, tmp_path_factory.mktemp("teacher"), show_progress=False)


@pytest.fixture(scope="session")
def labels_dir(
    tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits, teacher: TrainResult
) -> Path:
    """The teacher's pseudo labels of `digits.unlabeled`."""
    from testkit import CPU_LABELS

    from ns_train.labeler import label

    out = tmp_path_factory.mktemp("labels")
    label(teacher.checkpoint, digits.unlabeled, out, CPU_LABELS, show_progress=False)
    return out


@pytest.fixture(scope="session")
def small_sets(tmp_path_factory: pytest.TempPathFactory) -> DigitsSplits:
    """About 150 unlabeled digits in 4 shards (`testkit.small_digits`)."""
    from testkit import small_digits

    return small_digits(tmp_path_factory.mktemp("small-digits"))


@pytest.fixture(scope="session")
def small_teacher(tmp_path_factory: pytest.TempPathFactory, small_sets: DigitsSplits) -> Path:
    """The checkpoint of `testkit.tiny_teacher` on `small_sets`."""
    from testkit import tiny_teacher

    return tiny_teacher(small_sets, tmp_path_factory.mktemp("small-teacher"))


@pytest.fixture(scope="session")
def small_labels(
    tmp_path_factory: pytest.TempPathFactory, small_sets: DigitsSplits, small_teacher: Path
) -> Path:
    """`small_teacher`'s pseudo labels of `small_sets.unlabeled` (batches of 16)."""
    from testkit import CPU_LABELS

    from ns_train.config import replace
    from ns_train.labeler import label

    out = tmp_path_factory.mktemp("small-labels") / "labels"
    config = replace(CPU_LABELS, batch_size=16)
    label(small_teacher, small_sets.unlabeled, out, config, show_progress=False)
    return out
