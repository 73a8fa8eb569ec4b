"""Hostile, broken and unusual image files, through `ns shard` on a folder and through the loaders
of every backend (PyTorch, and DALI on the CPU when it imports).

Broken or dangerous files are counted skips: listed with their reason in `rejected.jsonl` (or
counted in `loader.skipped`), never decoded, nothing else lost. Legal but unusual files (CMYK,
grayscale, 16-bit, palette with transparency, alpha, 1×1, a PNG named `.jpg`, a phone camera's
multi-picture JPEG) are kept and load as 3-channel images of the view's size and the right color
in every backend alike.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ns_cli.main import app
from ns_data.images.structure import structure_problem
from ns_data.loading.loader import ImageLoader, dali_available
from ns_data.loading.views import IMAGENET_MEAN, IMAGENET_STD, View
from ns_data.shards.reader import ShardSet
from ns_data.shards.writer import ShardSetWriter

BACKENDS = [
    "torch",
    pytest.param(
        "dali-cpu",
        marks=[
            pytest.mark.dali,
            pytest.mark.skipif(not dali_available(), reason="nvidia.dali cannot be imported"),
        ],
    ),
]
COLOR = (200, 40, 90)
GRAY = 120


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_of(width: int, height: int, depth: int, rows: bytes, color_type: int = 2) -> bytes:
    """A PNG written by hand (Pillow writes neither 16-bit RGB nor a lying header)."""
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def rgb16_png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    pixel = b"".join(struct.pack(">H", c * 257) for c in color)
    return png_of(width, height, 16, (b"\x00" + pixel * width) * height)


def png_bomb() -> bytes:
    """100,000 × 100,000 pixels claimed by a 70-byte file (30 GB decoded)."""
    return png_of(100_000, 100_000, 8, b"\x00" * 64)


def jpeg_bomb() -> bytes:
    """A sound 16 × 16 JPEG whose frame header claims 65,535 × 65,535 pixels (12.9 GB decoded)."""
    data = bytearray(encode(Image.new("RGB", (16, 16), COLOR), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", 65535, 65535)
    return bytes(data)


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (40, 30), (60 * i, 0, 0)) for i in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


def palette_with_transparency() -> bytes:
    image = Image.new("RGB", (40, 30), COLOR).convert("P", palette=Image.Palette.ADAPTIVE)
    return encode(image, "PNG", transparency=0)


def mpo(first: Image.Image) -> bytes:
    """A multi-picture JPEG as phone cameras write (a JPEG, then a second picture after it)."""
    other = Image.new("RGB", first.size, (10, 200, 10))
    return encode(first, "MPO", quality=95, save_all=True, append_images=[other])


def legal_files() -> dict[str, tuple[bytes, tuple[int, int, int], tuple[int, int], str]]:
    """name -> (bytes, the color it shows, its size, the extension it is stored under)."""
    solid = Image.new("RGB", (40, 30), COLOR)
    gray = Image.new("L", (40, 30), GRAY)
    g3 = (GRAY, GRAY, GRAY)
    return {
        "cmyk.jpg": (encode(solid.convert("CMYK"), "JPEG", quality=95), COLOR, (40, 30), "jpg"),
        "gray.jpg": (encode(gray, "JPEG", quality=95), g3, (40, 30), "jpg"),
        "gray8.png": (encode(gray, "PNG"), g3, (40, 30), "png"),
        "gray16.png": (
            encode(Image.fromarray(np.full((30, 40), GRAY * 257, np.uint16)), "PNG"),
            g3,
            (40, 30),
            "png",
        ),
        "rgb16.png": (rgb16_png(40, 30, COLOR), COLOR, (40, 30), "png"),
        "palette.png": (palette_with_transparency(), COLOR, (40, 30), "png"),
        "alpha.png": (encode(solid.convert("RGBA"), "PNG"), COLOR, (40, 30), "png"),
        "one.jpg": (
            encode(Image.new("RGB", (1, 1), COLOR), "JPEG", quality=95),
            COLOR,
            (1, 1),
            "jpg",
        ),
        "one_png.png": (encode(Image.new("RGB", (1, 1), COLOR), "PNG"), COLOR, (1, 1), "png"),
        "png_named.jpg": (encode(solid, "PNG"), COLOR, (40, 30), "png"),
        "plain.jpg": (encode(solid, "JPEG", quality=95), COLOR, (40, 30), "jpg"),
        "phone_mpo.jpg": (mpo(solid), COLOR, (40, 30), "jpg"),
    }


def broken_files() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, reason under --verify decode, reason under --verify structure)."""
    good = encode(Image.new("RGB", (40, 30), COLOR), "JPEG")
    bomb = "decompression bomb|over the decompression-bomb limit"
    return {
        "truncated.jpg": (good[: len(good) // 2], "does not decode", "truncated JPEG"),
        "empty.jpg": (b"", "empty file", "empty file"),
        "bomb_png.png": (png_bomb(), bomb, bomb),
        "bomb_jpeg.jpg": (jpeg_bomb(), bomb, bomb),
        "animated_gif.gif": (animated("GIF"), "GIF is not stored", "not a JPEG, PNG or WebP"),
        "animated_webp.webp": (animated("WEBP"), "animated WebP", "animated WebP"),
        "notes.jpg": (b"just some text, not an image", "not an image", "not a JPEG, PNG or WebP"),
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "photos"
    root.mkdir()
    for name, (data, *_) in {**legal_files(), **broken_files()}.items():
        (root / name).write_bytes(data)
    return root


def shard(source: Path, out: Path, *options: str) -> str:
    result = CliRunner().invoke(app, ["shard", str(source), str(out), "--workers", "1", *options])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    out = tmp_path_factory.mktemp("sets") / "hostile"
    shard(source, out)
    return out


@pytest.mark.parametrize("verify", ["decode", "structure"])
def test_shard_keeps_the_usable_and_lists_the_rest(
    source: Path, tmp_path: Path, verify: str
) -> None:
    out = tmp_path / "set"
    output = shard(source, out, "--verify", verify)
    broken = broken_files()
    assert f"{len(broken)} files rejected" in output
    rejected = {
        r["file"]: r["reason"]
        for r in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())
    }
    assert rejected.keys() == broken.keys()
    column = 1 if verify == "decode" else 2
    for name, reason in rejected.items():
        assert re.search(broken[name][column], reason), (name, reason)
    with tarfile.open(next(out.glob("*.tar"))) as tar:
        members = {m.name for m in tar}
    kept = {f"{name.rsplit('.', 1)[0]}.{ext}" for name, (*_, ext) in legal_files().items()}
    assert members == kept, "every usable file is kept, under its real format's extension"


def _colors(images: torch.Tensor) -> torch.Tensor:
    """Median color (0-255) of each image of a normalized batch."""
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    pixels = images.float().flatten(2).median(dim=2).values * std + mean
    return pixels * 255


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_unusual_formats_load_alike_in_every_backend(
    sharded: Path, backend: str, train: bool
) -> None:
    """3 channels, the view's size and the file's color, in each backend, for each format."""
    shards = ShardSet(sharded)
    view = View(image_size=32, train=train, randaugment_n=0, flip=False, scale=(0.5, 1.0))
    loader = ImageLoader(shards, view, batch_size=4, backend=backend, workers=1, on_error="raise")
    batches = list(loader)
    images = torch.cat([b.images for b in batches])
    ids = torch.cat([b.sample_ids for b in batches]).tolist()
    assert images.shape == (len(legal_files()), 3, 32, 32) and loader.skipped == 0
    files = legal_files()
    names = sorted(files)  # a folder is read in name order: sample id i is the i-th name
    for sample, color in zip(ids, _colors(images), strict=True):
        want = torch.tensor(files[names[sample]][1], dtype=torch.float32)
        assert (color - want).abs().max() <= 6, (names[sample], color.tolist(), want.tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_dangerous_samples_in_a_foreign_set_are_skipped_unread(
    tmp_path: Path, backend: str
) -> None:
    """A set written by another tool holding bombs, an animated WebP, a truncated JPEG and an
    empty file: each loader skips and counts them without handing the bombs to a decoder (which
    would allocate 12 to 30 GB), and yields every other sample (a PNG stored as `.jpg` too)."""
    broken = broken_files()
    dangerous = {
        name: broken[name][0] for name in ("bomb_png.png", "bomb_jpeg.jpg", "animated_webp.webp")
    }
    for name, data in dangerous.items():  # the guard: refused before any decoder sees them
        assert structure_problem(data) is not None, name
    good = encode(Image.new("RGB", (40, 30), COLOR), "JPEG")
    png = encode(Image.new("RGB", (40, 30), COLOR), "PNG")
    samples = [("a", good, "jpg")]
    samples += [(name.split(".")[0], data, name.split(".")[1]) for name, data in dangerous.items()]
    samples += [("truncated", broken["truncated.jpg"][0], "jpg"), ("empty", b"", "jpg")]
    samples += [("png_as_jpg", png, "jpg"), ("z", good, "jpg")]
    kept = [0, len(samples) - 2, len(samples) - 1]  # a, the PNG stored as .jpg, z
    with ShardSetWriter(tmp_path / "foreign", "foreign", classes=None) as writer:
        for key, data, ext in samples:
            writer.add(key, data, ext, size=(40, 30))
    for train in (False, True):
        loader = ImageLoader(
            ShardSet(tmp_path / "foreign"),
            View(image_size=32, train=train),
            batch_size=3,
            backend=backend,
        )
        ids = sorted(i for b in loader for i in b.sample_ids.tolist())
        assert ids == kept and loader.skipped == len(samples) - len(kept)
