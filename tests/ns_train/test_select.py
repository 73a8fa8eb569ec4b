"""`make_plan` on real pseudo labels: exact per-class counts, alignment with the set's rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ns_data.labels.store import SUFFIX, PseudoLabels
from ns_data.loading.loader import ImageLoader
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet
from ns_train.data import load_plan
from ns_train.errors import TrainError
from ns_train.runs.digits import DigitsSplits
from ns_train.selection_plan import make_plan


@pytest.fixture
def sets(small_sets: DigitsSplits) -> DigitsSplits:
    return small_sets


@pytest.fixture
def labels(small_labels: Path) -> Path:
    return small_labels


@pytest.fixture
def threshold(labels: Path) -> float:
    """The median top-1 probability, so that the threshold drops about half the samples."""
    return float(np.median(PseudoLabels(labels).top1()[1].astype(np.float32)))


@pytest.mark.parametrize("per_class", [5, 400])
def test_each_class_with_a_pool_gets_exactly_its_target(
    labels: Path,
    sets: DigitsSplits,
    threshold: float,
    per_class: int,
    tmp_path: Path,
) -> None:
    summary = make_plan(
        labels, sets.labeled, sets.unlabeled, tmp_path, threshold=threshold, per_class=per_class
    )
    rows = ShardSet(sets.unlabeled)
    plan = load_plan(tmp_path / "plan.npy", len(rows))
    top_class, confidence = PseudoLabels(labels).top1()
    confidence = confidence.astype(np.float32)
    pool = np.bincount(top_class[confidence >= threshold], minlength=10)
    copies = np.bincount(top_class, weights=plan, minlength=10).astype(int)
    assert pool.sum() > 0
    assert (copies == np.where(pool > 0, per_class, 0)).all()
    assert (plan[confidence < threshold] == 0).all()
    for c in np.flatnonzero(pool > per_class):  # the most confident are kept
        mine = top_class == c
        assert confidence[mine & (plan > 0)].min() >= confidence[mine & (plan == 0)].max()
    assert (summary.selection.copies == copies).all()
    written = json.loads((tmp_path / "selection.json").read_text())
    assert written["per_class"]["kept"] == summary.selection.kept.tolist()
    assert (tmp_path / "selection.png").stat().st_size > 0
    loader = ImageLoader(rows, View(image_size=32), batch_size=8, copies=plan, backend="torch")
    assert len(loader) == -(-int(plan.sum()) // 8)


def test_default_targets_follow_the_labeled_distribution(
    labels: Path,
    sets: DigitsSplits,
    tmp_path: Path,
) -> None:
    summary = make_plan(labels, sets.labeled, sets.unlabeled, tmp_path, threshold=0.0)
    assert summary.targets.sum() == len(ShardSet(sets.unlabeled))
    assert summary.targets.max() - summary.targets.min() <= 1  # 5 labels per class


def test_labels_of_another_set_are_refused(
    labels: Path,
    sets: DigitsSplits,
    tmp_path: Path,
) -> None:
    with pytest.raises(TrainError, match=r"no pseudo labels for shard test-000000\.tar"):
        make_plan(labels, sets.labeled, sets.test, tmp_path)


def test_an_unfinished_labels_folder_is_refused(
    labels: Path,
    sets: DigitsSplits,
    tmp_path: Path,
) -> None:
    partial = tmp_path / "labels"
    shutil.copytree(labels, partial)
    (partial / f"unlabeled-000003{SUFFIX}").unlink()
    with pytest.raises(TrainError, match=r"unlabeled-000003\.tar"):
        make_plan(partial, sets.labeled, sets.unlabeled, tmp_path / "plan")
    assert not (tmp_path / "plan" / "plan.npy").exists()
