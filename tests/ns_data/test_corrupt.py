"""ImageNet-C-style corruption: single images (library wiring, seeds, sizes) and whole sets."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ns_data.errors import DataError
from ns_data.robustness.corrupt import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    RECORD_NAME,
    corrupt_image,
    corrupt_set,
)
from ns_data.shards.reader import ShardSet

from .conftest import jpeg, write_set

NAMES = ["gaussian_noise", "contrast"]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 32×32 textured RGB crop of a scikit-image photo."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:228:4, 160:288:4])


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory, photo: np.ndarray) -> Path:
    """20 labeled 32×32 JPEGs in 2 classes (3 shards of at most 8)."""
    images = [jpeg(np.roll(photo, 3 * n, axis=1)) for n in range(20)]
    labels = [n % 2 for n in range(20)]
    return write_set(tmp_path_factory.mktemp("sets") / "tiny", images, labels, 2, (32, 32))


def digest(folder: Path) -> str:
    """A hash of every file's relative path and bytes (the options record left out)."""
    h = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != RECORD_NAME:
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def test_names_follow_the_released_folders() -> None:
    assert len(CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert CORRUPTIONS[0] == "gaussian_noise" and CORRUPTIONS[-1] == "jpeg_compression"
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")


@pytest.mark.parametrize("name", CORRUPTIONS + EXTRA_CORRUPTIONS)
def test_every_corruption_changes_the_image(photo: np.ndarray, name: str) -> None:
    out = corrupt_image(photo, name, 3, seed=1)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert not np.array_equal(out, photo)


@pytest.mark.parametrize("name", ["gaussian_noise", "contrast", "pixelate"])
def test_change_grows_with_severity(photo: np.ndarray, name: str) -> None:
    def change(severity: int) -> float:
        return float(np.abs(corrupt_image(photo, name, severity, 0) - photo.astype(float)).mean())

    assert change(5) > change(1)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur"])
def test_seed_fixes_the_noise(photo: np.ndarray, name: str) -> None:
    first = corrupt_image(photo, name, 2, seed=7)
    np.random.seed(123)  # the global state before the call does not matter
    assert np.array_equal(corrupt_image(photo, name, 2, seed=7), first)
    assert not np.array_equal(corrupt_image(photo, name, 2, seed=8), first)


def test_small_images_are_corrupted_at_32_px_and_scaled_back(photo: np.ndarray) -> None:
    small = np.ascontiguousarray(photo[:12, :20])
    for name in ("glass_blur", "frost", "zoom_blur"):
        out = corrupt_image(small, name, 4, 0)
        assert out.shape == small.shape and out.dtype == np.uint8
        assert not np.array_equal(out, small)


def test_spatter_without_drops_returns_the_image(photo: np.ndarray) -> None:
    # seed 35 draws no drop at severity 1 on 32×32 (numpy's legacy RNG stream is frozen)
    assert np.array_equal(corrupt_image(photo, "spatter", 1, seed=35), photo)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "fogg"}, "choose from gaussian_noise"),
        ({"severity": 6}, "outside 1-5"),
        ({"seed": -1}, "seed -1"),
    ],
)
def test_bad_image_arguments(photo: np.ndarray, kwargs: dict, message: str) -> None:
    arguments = {"pixels": photo, "name": "fog", "severity": 1, "seed": 0} | kwargs
    with pytest.raises(DataError, match=message):
        corrupt_image(**arguments)
    with pytest.raises(DataError, match="uint8"):
        corrupt_image(photo.astype(np.float32), "fog", 1, 0)


def test_corrupt_set_writes_shard_sets(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    report = corrupt_set(
        tiny_set, out, corruptions=NAMES, severities=[1, 5], workers=1, progress=False
    )
    assert (report.units_written, report.units_skipped, report.images) == (4, 0, 80)
    source = ShardSet(tiny_set)
    for name in NAMES:
        for severity in (1, 5):
            shards = ShardSet(out / name / str(severity))
            assert shards.manifest.classes == source.manifest.classes
            assert shards.labels.tolist() == source.labels.tolist()
            assert shards.manifest.class_counts == [10, 10]
            with Image.open(io.BytesIO(shards.read_image(3))) as image:
                assert image.size == (32, 32)
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["corruptions"] == NAMES and record["severities"] == [1, 5]
    assert record["library"] == "imagecorruptions-imaug" and record["library_version"]
    assert record["source"].endswith(str(tiny_set))


def test_imagenet_c_layout_and_limit(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    corrupt_set(
        tiny_set,
        out,
        corruptions=["pixelate"],
        severities=[2],
        layout="imagenet-c",
        limit_per_class=3,
        progress=False,
    )
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.JPEG"))
    assert files == [
        *(f"pixelate/2/0/s{n:04d}.JPEG" for n in (0, 2, 4)),
        *(f"pixelate/2/1/s{n:04d}.JPEG" for n in (1, 3, 5)),
    ]
    with Image.open(out / files[0]) as image:
        assert image.format == "JPEG" and image.size == (32, 32)


def test_class_folder_source(tmp_path: Path, photo: np.ndarray) -> None:
    for name in ("cat", "dog"):
        (tmp_path / "tree" / name).mkdir(parents=True)
        for n in range(2):
            Image.fromarray(np.roll(photo, n, axis=0)).save(tmp_path / "tree" / name / f"i{n}.png")
    out = tmp_path / "c"
    corrupt_set(tmp_path / "tree", out, corruptions=["fog"], severities=[1], progress=False)
    corrupt_set(
        tmp_path / "tree",
        tmp_path / "r",
        corruptions=["fog"],
        severities=[1],
        layout="imagenet-c",
        progress=False,
    )
    shards = ShardSet(out / "fog" / "1")
    assert shards.manifest.classes == ["cat", "dog"] and shards.labels.tolist() == [0, 0, 1, 1]
    assert sorted(str(p.relative_to(tmp_path / "r")) for p in (tmp_path / "r").rglob("*.JPEG")) == [
        "fog/1/cat/i0.JPEG",
        "fog/1/cat/i1.JPEG",
        "fog/1/dog/i0.JPEG",
        "fog/1/dog/i1.JPEG",
    ]


def test_rerun_skips_done_units_and_redoes_unfinished_ones(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    options = {"corruptions": NAMES, "severities": [2, 3], "workers": 1, "progress": False}
    corrupt_set(tiny_set, out, **options)
    before = digest(out)
    again = corrupt_set(tiny_set, out, **options)
    assert (again.units_written, again.units_skipped, again.images) == (0, 4, 0)
    # a crash: one unit left half-written under its temporary name, never renamed
    unit = out / "contrast" / "3"
    shutil.rmtree(unit)
    crashed = unit.with_name(".3.tmp-99999")
    crashed.mkdir()
    (crashed / "contrast-3-000000.tar").write_bytes(b"half a tar")
    resumed = corrupt_set(tiny_set, out, **options)
    assert (resumed.units_written, resumed.units_skipped) == (1, 3)
    assert not crashed.exists() and digest(out) == before


def test_bytes_depend_on_the_seed_not_on_workers(tiny_set: Path, tmp_path: Path) -> None:
    options = {"corruptions": ["gaussian_noise"], "severities": [1, 4], "progress": False}
    corrupt_set(tiny_set, tmp_path / "one", workers=1, **options)
    corrupt_set(tiny_set, tmp_path / "two", workers=2, **options)
    corrupt_set(tiny_set, tmp_path / "other", workers=1, seed=1, **options)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    assert digest(tmp_path / "one") != digest(tmp_path / "other")


def test_bad_set_arguments(tiny_set: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown corruption 'fogg'; choose from gaussian_noise"):
        corrupt_set(tiny_set, tmp_path / "a", corruptions=["fogg"])
    with pytest.raises(DataError, match="severity 0 is outside 1-5"):
        corrupt_set(tiny_set, tmp_path / "a", severities=[0])
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="loose is neither a labeled shard set"):
        corrupt_set(tmp_path / "loose", tmp_path / "a")
    corrupt_set(tiny_set, tmp_path / "b", corruptions=["fog"], severities=[1], progress=False)
    with pytest.raises(DataError, match="made with seed 0, not 1"):
        corrupt_set(tiny_set, tmp_path / "b", corruptions=["fog"], seed=1, progress=False)
