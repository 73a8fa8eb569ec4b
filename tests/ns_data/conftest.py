"""Shared fixtures for ns_data tests: the DALI probe (done once) and tiny shard sets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ns_data.shards.writer import ShardSetWriter

try:
    import nvidia.dali  # noqa: F401

    DALI_MISSING = ""
except ImportError as err:  # a wheel that is absent or cannot load its libraries
    DALI_MISSING = f"nvidia.dali cannot be imported ({err}); install nvidia-dali-cuda130"

needs_dali = pytest.mark.skipif(bool(DALI_MISSING), reason=DALI_MISSING or "DALI is importable")
CPU_BACKENDS = ["torch", pytest.param("dali-cpu", marks=[pytest.mark.dali, needs_dali])]

COLORS = [
    (230, 30, 30),
    (30, 200, 40),
    (40, 60, 220),
    (240, 220, 30),
    (20, 20, 20),
    (250, 250, 250),
]


@pytest.fixture(params=CPU_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every loader backend that runs on the CPU; DALI's is skipped with a reason when missing."""
    return request.param


def jpeg(pixels: np.ndarray, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_set(
    directory: Path, images: list[bytes], labels: list[int], classes: int, size: tuple[int, int]
) -> Path:
    """A labeled shard set of `images` (8 samples per shard, so reads cross tar boundaries)."""
    with ShardSetWriter(
        directory, directory.name, classes=[str(c) for c in range(classes)], max_count=8
    ) as writer:
        for number, (image, label) in enumerate(zip(images, labels, strict=True)):
            writer.add(f"s{number:04d}", image, "jpg", label=label, size=size)
    return directory


@pytest.fixture(scope="session")
def color_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 JPEGs (48×40) of one uniform color per class, so an image shows its own label."""
    labels = [int(c) for c in np.random.default_rng(0).integers(0, len(COLORS), 60)]
    images = [jpeg(np.full((40, 48, 3), COLORS[c], np.uint8)) for c in labels]
    directory = tmp_path_factory.mktemp("sets") / "colors"
    return write_set(directory, images, labels, len(COLORS), (48, 40))


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 textured JPEGs (96×72 crops of scikit-image photos), labels by source photo."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(1)
    images, labels = [], []
    for number in range(40):
        label = number % len(photos)
        photo = photos[label]
        top = int(rng.integers(0, photo.shape[0] - 72))
        left = int(rng.integers(0, photo.shape[1] - 96))
        images.append(jpeg(np.ascontiguousarray(photo[top : top + 72, left : left + 96])))
        labels.append(label)
    directory = tmp_path_factory.mktemp("sets") / "photos"
    return write_set(directory, images, labels, len(photos), (96, 72))


def bogus_sampling(data: bytes) -> bytes:
    """A JPEG whose markers and sizes are sound but whose first component has sampling factors
    0: only a decoder notices."""
    damaged = bytearray(data)
    damaged[data.index(b"\xff\xc0") + 11] = 0x00  # FF C0, length, precision, H, W, n, id, *HV*
    return bytes(damaged)
