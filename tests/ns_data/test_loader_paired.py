"""PairedLoader: labeled and unlabeled batches stepped together, the labeled loader cycling."""

from __future__ import annotations

import pytest
import torch

from ns_data.digits import write_digits
from ns_data.errors import DataError
from ns_data.loader import ImageLoader
from ns_data.paired import PairedLoader
from ns_data.shard_set import ShardSet
from ns_data.views import View

VIEW = View(image_size=32, train=True, flip=False)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShardSet, ShardSet]:
    splits = write_digits(tmp_path_factory.mktemp("digits"))
    return ShardSet(splits.labeled), ShardSet(splits.unlabeled)


def pair(digits: tuple[ShardSet, ShardSet], backend: str, ratio: int = 3) -> PairedLoader:
    labeled, unlabeled = digits
    return PairedLoader(
        ImageLoader(labeled, VIEW, batch_size=16, shuffle=True, drop_last=True, backend=backend),
        ImageLoader(unlabeled, VIEW, batch_size=16 * ratio, shuffle=True, backend=backend),
        ratio=ratio,
    )


def test_steps_cycle_the_labeled_loader(digits: tuple[ShardSet, ShardSet], backend: str) -> None:
    pairs = pair(digits, backend)
    steps = list(pairs)
    assert len(steps) == len(pairs) == -(-len(digits[1]) // 48) and pairs.epoch == 1
    assert all(len(s.labeled.sample_ids) == 16 for s in steps)
    assert all(len(s.unlabeled.sample_ids) == 48 for s in steps[:-1])
    assert pairs.labeled.epoch >= len(steps) // len(pairs.labeled) - 1  # cycled several epochs
    assert all((s.unlabeled.labels == -1).all() and (s.labeled.labels >= 0).all() for s in steps)


def test_ratio_must_match_the_batch_sizes(digits: tuple[ShardSet, ShardSet]) -> None:
    labeled, unlabeled = digits
    with pytest.raises(DataError, match="make it 48"):
        PairedLoader(
            ImageLoader(labeled, VIEW, batch_size=16, backend="torch"),
            ImageLoader(unlabeled, VIEW, batch_size=32, backend="torch"),
            ratio=3,
        )


def test_resume_continues_both(digits: tuple[ShardSet, ShardSet], backend: str) -> None:
    reference = pair(digits, backend)
    expected = list(reference)
    interrupted = pair(digits, backend)
    steps = iter(interrupted)
    for _ in range(9):
        next(steps)
    resumed = pair(digits, backend)
    resumed.load_state_dict(interrupted.state_dict())
    rest = list(resumed)
    assert len(rest) == len(expected) - 9
    for got, want in zip(rest, expected[9:], strict=True):
        assert torch.equal(got.labeled.sample_ids, want.labeled.sample_ids)
        assert torch.equal(got.unlabeled.sample_ids, want.unlabeled.sample_ids)
        assert torch.equal(got.labeled.images, want.labeled.images)
        assert torch.equal(got.unlabeled.images, want.unlabeled.images)
