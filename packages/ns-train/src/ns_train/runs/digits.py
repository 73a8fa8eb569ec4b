"""The embedded demo data: scikit-learn's 1,797 handwritten digits as three shard sets.

The 8×8 grey images (values 0-16) are upscaled, turned into RGB (dark ink on white paper) and
JPEG-encoded, then split per class into a labeled set with few labels per class, an unlabeled set
(its labels withheld) and a test set.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from ns_data.errors import DataError
from ns_data.shards.manifest import Manifest
from ns_data.shards.writer import ShardSetWriter

CLASSES = [str(d) for d in range(10)]


@dataclass(frozen=True, slots=True)
class DigitsSplits:
    """Where the three sets were written."""

    labeled: Path
    unlabeled: Path
    test: Path
    unlabeled_truth: Path | None = None
    """The unlabeled images again with their labels, same keys and order (oracle baselines)."""


def digit_jpeg(pixels: np.ndarray, size: int, quality: int = 95) -> bytes:
    """Encode one 8×8 digit (0-16) as an RGB JPEG of `size`×`size`, dark ink on white."""
    grey = (255 - pixels.reshape(8, 8) * (255 / 16)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(grey, mode="L").resize((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def split_indices(
    targets: np.ndarray, labels_per_class: int, test_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: `labels_per_class` labeled, `test_per_class` test, the rest unlabeled (sorted)."""
    rng = np.random.default_rng(seed)
    labeled, test, unlabeled = [], [], []
    for cls in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == cls))
        if len(members) < labels_per_class + test_per_class + 1:
            raise DataError(
                f"class {cls} has {len(members)} digits: lower labels_per_class or test_per_class"
            )
        labeled.append(members[:labels_per_class])
        test.append(members[labels_per_class : labels_per_class + test_per_class])
        unlabeled.append(members[labels_per_class + test_per_class :])
    return (
        np.sort(np.concatenate(labeled)),
        np.sort(np.concatenate(unlabeled)),
        np.sort(np.concatenate(test)),
    )


def write_digits(
    out_dir: Path,
    *,
    image_size: int = 32,
    labels_per_class: int = 10,
    test_per_class: int = 50,
    seed: int = 0,
    max_count: int = 500,
    with_truth: bool = False,
) -> DigitsSplits:
    """Write `labeled/`, `unlabeled/` and `test/` shard sets under `out_dir` (skips finished sets);
    `with_truth` also writes `unlabeled-truth/`, the unlabeled digits with their labels."""
    digits = load_digits()
    parts = split_indices(digits.target, labels_per_class, test_per_class, seed)
    root = Path(out_dir)
    splits = DigitsSplits(
        root / "labeled",
        root / "unlabeled",
        root / "test",
        unlabeled_truth=root / "unlabeled-truth" if with_truth else None,
    )
    source = (
        f"sklearn.datasets.load_digits (size={image_size}, labels_per_class={labels_per_class}, "
        f"test_per_class={test_per_class}, seed={seed})"
    )
    sets = [(splits.labeled, parts[0], True), (splits.unlabeled, parts[1], False)]
    sets.append((splits.test, parts[2], True))
    if splits.unlabeled_truth is not None:
        sets.append((splits.unlabeled_truth, parts[1], True))
    for directory, indices, labeled in sets:
        if _is_complete(directory, source):
            continue
        with ShardSetWriter(
            directory,
            directory.name,
            classes=CLASSES if labeled else None,
            max_count=max_count,
            source=source,
        ) as writer:
            for index in indices:
                writer.add(
                    f"digit{index:05d}",
                    digit_jpeg(digits.data[index], image_size),
                    "jpg",
                    label=int(digits.target[index]) if labeled else None,
                    size=(image_size, image_size),
                )
    return splits


def _is_complete(directory: Path, source: str) -> bool:
    try:
        return Manifest.load(directory).source == source
    except DataError:
        return False
