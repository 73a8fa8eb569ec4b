"""PairedLoader: labeled and unlabeled batches stepped together, the labeled loader cycling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ns_data.errors import DataError
from ns_data.loading.loader import ImageLoader
from ns_data.loading.paired import PairedLoader
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet
from ns_data.shards.writer import ShardSetWriter

from .conftest import jpeg, write_set

VIEW = View(image_size=32, train=True, flip=False)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShardSet, ShardSet]:
    """A labeled set of 64 and an unlabeled set of 500 small JPEGs (ten pairs of batches)."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("paired")
    images = [jpeg(rng.integers(0, 256, (16, 16, 3), np.uint8)) for _ in range(564)]
    labeled = write_set(root / "labeled", images[:64], [n % 10 for n in range(64)], 10, (16, 16))
    with ShardSetWriter(root / "unlabeled", "unlabeled", classes=None, max_count=64) as writer:
        for number, image in enumerate(images[64:]):
            writer.add(f"u{number:04d}", image, "jpg", size=(16, 16))
    return ShardSet(labeled), ShardSet(root / "unlabeled")


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
