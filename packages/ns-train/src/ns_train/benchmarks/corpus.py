"""The benchmark corpus: realistic JPEG photos, built once and cached.

Photos are cut from scikit-image's sample photos (astronaut, coffee, chelsea, rocket, the Hubble
deep field, immunohistochemistry, retina, camera): a random crop of the target's aspect ratio
covering 50-100 % of the largest such box, resized (bicubic) to the target size, JPEG quality 90,
in 10 class folders. Real photo content matters: JPEG decode time depends on it, and noise or flat
colour would be much faster or slower to decode than photos.

Sizes (`--corpus`): `500x375`, `640x480`, `1024x768` (three quarters landscape, one quarter the
same size portrait), or `imagenet-mix`, our approximation of ImageNet-1k's train set, where most
images are Flickr photos scaled to 500 px on the longer side: `IMAGENET_MIX` below. The sample
photos are at most 1411 px, so the larger sizes are partly upscaled crops.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ns_train.errors import TrainError

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
)
CLASSES = 10
VERSION = 1
"""Bumped when the photos a corpus holds change: older caches are rebuilt."""
IMAGENET_MIX: tuple[tuple[tuple[int, int], float], ...] = (
    ((500, 375), 0.35),
    ((500, 333), 0.20),
    ((375, 500), 0.12),
    ((333, 500), 0.05),
    ((500, 500), 0.05),
    ((640, 480), 0.08),
    ((800, 600), 0.07),
    ((1024, 768), 0.05),
    ((1600, 1200), 0.03),
)
"""(width, height) and share of the imagenet-mix corpus."""
MISSING_SKIMAGE = (
    "the benchmark corpus is cut from scikit-image's sample photos, and scikit-image is not "
    "installed: pip install scikit-image, or pass --data SHARDS to benchmark on your own shard set"
)


def size_mix(corpus: str) -> tuple[tuple[tuple[int, int], float], ...]:
    """The (width, height) sizes of a corpus and their shares."""
    if corpus == "imagenet-mix":
        return IMAGENET_MIX
    width, height = (int(x) for x in corpus.split("x"))
    return (((width, height), 0.75), ((height, width), 0.25))


@dataclass(frozen=True, slots=True)
class Corpus:
    """A built corpus: `images/classNN/*.jpg` and shard sets of it."""

    directory: Path
    name: str
    count: int
    megabytes: float

    @property
    def images(self) -> Path:
        return self.directory / "images"

    def shards(self, per_shard: int) -> Path:
        """A labeled shard set of every photo, `per_shard` per tar (written on first use)."""
        from ns_data.shards.writer import ShardSetWriter

        out = self.directory / f"shards-{per_shard}"
        if (out / "manifest.json").exists():
            return out
        partial = self.directory / f".shards-{per_shard}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        sizes = json.loads((self.directory / "corpus.json").read_text())["sizes"]
        classes = [f"class{i:02d}" for i in range(CLASSES)]
        with ShardSetWriter(partial, "photos", classes=classes, max_count=per_shard) as writer:
            for number, (width, height) in enumerate(sizes):
                path = self.images / f"class{number % CLASSES:02d}" / f"img{number:06d}.jpg"
                writer.add(
                    f"img{number:06d}",
                    path.read_bytes(),
                    "jpg",
                    label=number % CLASSES,
                    size=(width, height),
                )
        _replace(partial, out)
        return out


def build_corpus(
    cache: Path, corpus: str, count: int, tick: Callable[[], None] | None = None, seed: int = 0
) -> Corpus:
    """The corpus `corpus` of `count` photos under `cache` (built there on first use)."""
    directory = Path(cache) / f"{corpus}-{count}-v{VERSION}"
    done = directory / "corpus.json"
    if done.exists():
        return Corpus(directory, corpus, count, json.loads(done.read_text())["megabytes"])
    try:
        from skimage import data
    except ImportError as err:
        raise TrainError(MISSING_SKIMAGE) from err
    from PIL import Image

    photos = [Image.fromarray(_rgb(getattr(data, name)())) for name in PHOTOS]
    mix = size_mix(corpus)
    shares = np.array([share for _, share in mix])
    rng = np.random.default_rng(seed)
    partial = directory.with_name(f".{directory.name}.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    sizes, total = [], 0
    for number in range(count):
        width, height = mix[int(rng.choice(len(mix), p=shares / shares.sum()))][0]
        photo = photos[number % len(photos)]
        jpeg = _cut(photo, width, height, rng)
        path = partial / "images" / f"class{number % CLASSES:02d}" / f"img{number:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg)
        sizes.append((width, height))
        total += len(jpeg)
        if tick is not None:
            tick()
    megabytes = total / 1e6
    summary = {"corpus": corpus, "count": count, "megabytes": megabytes, "sizes": sizes}
    (partial / "corpus.json").write_text(json.dumps(summary))
    _replace(partial, directory)
    return Corpus(directory, corpus, count, megabytes)


def _rgb(array: np.ndarray) -> np.ndarray:
    """Three uint8 channels (grey photos repeated, alpha dropped)."""
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def _cut(photo: object, width: int, height: int, rng: np.random.Generator) -> bytes:
    """A random crop of `width`:`height` aspect, 50-100 % of the largest, resized, as JPEG q90."""
    from PIL import Image

    assert isinstance(photo, Image.Image)
    aspect = width / height
    box_w = min(photo.width, photo.height * aspect)
    scale = rng.uniform(0.5, 1.0) ** 0.5
    crop_w, crop_h = box_w * scale, box_w * scale / aspect
    left = rng.uniform(0, photo.width - crop_w)
    top = rng.uniform(0, photo.height - crop_h)
    image = photo.resize(
        (width, height), Image.Resampling.BICUBIC, box=(left, top, left + crop_w, top + crop_h)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _replace(partial: Path, final: Path) -> None:
    """Move a finished build into place (another process may have finished first: keep theirs)."""
    try:
        partial.rename(final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(partial, ignore_errors=True)
