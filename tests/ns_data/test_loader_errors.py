"""Unreadable images: kept out of batches and counted (`on_error="skip"`) or raised."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ns_data.errors import DataError
from ns_data.images.check import checked_decode
from ns_data.images.structure import read_header, structure_problem
from ns_data.loading.loader import ImageLoader
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet

from .conftest import bogus_sampling, jpeg, needs_dali, write_set

GOOD = jpeg(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
TRUNCATED = GOOD[: len(GOOD) // 2]
GARBAGE = b"\xff\xd8\xff\xe0" + bytes(np.random.default_rng(1).integers(0, 256, 900, np.uint8))


def _without_frame_header(data: bytes) -> bytes:
    """A JPEG whose SOF0 segment (size, components) is gone."""
    start = data.index(b"\xff\xc0")
    length = int.from_bytes(data[start + 2 : start + 4], "big")
    return data[:start] + data[start + 2 + length :]


NO_FRAME = _without_frame_header(GOOD)
BOGUS = bogus_sampling(GOOD)
BAD = {5: TRUNCATED, 12: GARBAGE, 13: b"not an image at all"}


@pytest.fixture(scope="module")
def broken_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = [BAD.get(n, GOOD) for n in range(24)]
    directory = tmp_path_factory.mktemp("sets") / "broken"
    return write_set(directory, images, [n % 3 for n in range(24)], 3, (48, 40))


def test_structure_check() -> None:
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    assert structure_problem(GOOD) is None and structure_problem(png.getvalue()) is None
    assert "truncated" in str(structure_problem(TRUNCATED))
    assert "truncated PNG" in str(structure_problem(png.getvalue()[:-12]))
    assert structure_problem(GARBAGE) is not None
    assert structure_problem(b"GIF89a") == "not a JPEG, PNG or WebP image"
    assert "without a frame header" in str(structure_problem(NO_FRAME))
    assert structure_problem(BOGUS) is None  # looks fine; the decoder must tell
    assert "Bogus sampling factors" in str(checked_decode(BOGUS))
    assert checked_decode(GOOD).shape == (3, 40, 48)  # type: ignore[union-attr]


@pytest.mark.parametrize("train", [False, True])
def test_bad_images_are_skipped_and_counted(broken_set: Path, backend: str, train: bool) -> None:
    view = View(image_size=32, train=train)
    loader = ImageLoader(ShardSet(broken_set), view, batch_size=4, backend=backend, workers=2)
    batches = list(loader)
    ids = sorted(i for b in batches for i in b.sample_ids.tolist())
    assert ids == sorted(set(range(24)) - set(BAD))
    assert all(len(b.images) == len(b.labels) == len(b.sample_ids) for b in batches)
    assert loader.skipped == 3 and [len(b.sample_ids) for b in batches] == [4, 3, 4, 2, 4, 4]
    list(loader)
    assert loader.skipped == 6


def test_raise_names_the_sample(broken_set: Path, backend: str) -> None:
    loader = ImageLoader(
        ShardSet(broken_set), View(image_size=32), batch_size=4, backend=backend, on_error="raise"
    )
    with pytest.raises(DataError, match=r"sample 5 in .*broken-000000.tar is not a readable image"):
        list(loader)


def test_dropped_rows_are_never_read(broken_set: Path, backend: str) -> None:
    """Copies 0 on the bad rows: `raise` never fires, so their bytes were never decoded."""
    copies = np.ones(24, np.int8)
    copies[list(BAD)] = 0
    loader = ImageLoader(
        ShardSet(broken_set),
        View(image_size=32),
        batch_size=4,
        backend=backend,
        copies=copies,
        on_error="raise",
    )
    assert sum(len(b.sample_ids) for b in loader) == 21


def test_wholly_unreadable_batch_is_left_out(tmp_path: Path, backend: str) -> None:
    images = [GOOD] * 4 + [TRUNCATED] * 4 + [GOOD] * 4
    shards = ShardSet(write_set(tmp_path / "s", images, [0] * 12, 1, (48, 40)))
    loader = ImageLoader(shards, View(image_size=32), batch_size=4, backend=backend)
    ids = [b.sample_ids.tolist() for b in loader]
    assert ids == [[0, 1, 2, 3], [8, 9, 10, 11]] and loader.skipped == 4


@pytest.mark.parametrize("train", [False, True])
def test_drop_last_keeps_batches_full(tmp_path: Path, backend: str, train: bool) -> None:
    """Stand-ins (the epoch's next readable rows) replace unreadable samples: with a wholly
    unreadable batch on one rank, both ranks still yield `len(loader)` full batches."""
    images = [GOOD] * 4 + [TRUNCATED] * 4 + [GOOD] * 3 + [GARBAGE] + [GOOD] * 14
    shards = ShardSet(write_set(tmp_path / "s", images, [n % 3 for n in range(26)], 3, (48, 40)))
    view = View(image_size=32, train=train)
    per_rank = []
    for rank in (0, 1):
        loader = ImageLoader(
            shards, view, batch_size=4, drop_last=True, rank=rank, world_size=2, backend=backend
        )
        batches = list(loader)
        assert len(batches) == len(loader) == 3
        assert all(len(b.images) == len(b.labels) == len(b.sample_ids) == 4 for b in batches)
        assert all((b.labels == b.sample_ids % 3).all() for b in batches)
        per_rank.append([b.sample_ids.tolist() for b in batches])
        assert loader.skipped == (5 if rank == 0 else 0)
    assert per_rank[0] == [[0, 1, 2, 3], [8, 9, 10, 12], [8, 9, 10, 12]]
    assert per_rank[1] == [[13, 14, 15, 16], [17, 18, 19, 20], [21, 22, 23, 24]]


@needs_dali
def test_dali_recovers_from_a_failed_batch(tmp_path: Path) -> None:
    """A sample only the decoder rejects fails DALI's batch: found, left out, batch re-run."""
    images = [GOOD] * 10 + [BOGUS] + [GOOD] * 13
    shards = ShardSet(write_set(tmp_path / "s", images, [0] * 24, 1, (48, 40)))
    view = View(image_size=32, train=True)
    loader = ImageLoader(shards, view, batch_size=4, backend="dali-cpu", workers=2, seed=1)
    batches = list(loader)
    assert [len(b.sample_ids) for b in batches] == [4, 4, 3, 4, 4, 4]
    assert loader.skipped == 1 and 10 in loader.bad_rows
    again = list(ImageLoader(shards, view, batch_size=4, backend="dali-cpu", workers=2, seed=1))
    assert all((a.images == b.images).all() for a, b in zip(batches, again, strict=True))


def test_the_header_reads_the_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = io.BytesIO()
    Image.new("RGB", (48, 40)).save(sideways, format="JPEG", exif=exif.tobytes())
    header = read_header(sideways.getvalue())
    assert not isinstance(header, str)
    assert (header.width, header.height, header.orientation) == (48, 40, 6)
    assert header.upright_size == (40, 48)
    plain = read_header(GOOD)
    assert not isinstance(plain, str) and plain.orientation == 1 and plain.upright_size == (48, 40)


@pytest.mark.dali
@needs_dali
def test_an_image_only_dali_refuses_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When torchvision reads an image that DALI's decoder refuses (nvJPEG turns down formats
    the CPU decoders read), the runner finds it by decoding each row alone with DALI, skips and
    counts it. Simulated on the CPU: the torchvision re-check is patched to accept everything,
    so only DALI's own refusal of BOGUS can point at it."""
    from ns_data.loading.dali import runner as dali_runner

    monkeypatch.setattr(dali_runner, "checked_decode", lambda data: np.zeros((3, 1, 1)))
    images = [BOGUS if n == 6 else GOOD for n in range(16)]
    directory = write_set(tmp_path / "refused", images, [n % 2 for n in range(16)], 2, (48, 40))
    loader = ImageLoader(ShardSet(directory), View(image_size=32), batch_size=8, backend="dali-cpu")
    ids = np.concatenate([b.sample_ids.numpy() for b in loader])
    assert sorted(ids.tolist()) == [n for n in range(16) if n != 6]
    assert list(loader.bad_rows) == [6] and "DALI cannot decode it" in loader.bad_rows[6]
