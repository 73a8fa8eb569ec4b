"""Images/s of the loader backends vs the usual baseline, at 224 px on realistic JPEGs.

Baseline: webdataset + PIL + torchvision v2 in a torch DataLoader, the same ops (random-resized
crop, RandAugment, flip, normalize) and the same number of workers as DALI has threads.
Data: photos of about 500×375 cut from scikit-image's sample photos (random crops and rescales,
JPEG q90), written once with ShardSetWriter under --data. Not a test: run it by hand.

    uv run --frozen python bench/bench_loader.py --images 2000 --workers 2
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torchvision.transforms import v2

from ns_data.loader import Backend, ImageLoader
from ns_data.shard_set import ShardSet
from ns_data.shard_writer import ShardSetWriter
from ns_data.views import View


def write_photos(directory: Path, count: int, seed: int = 0) -> Path:
    """`count` JPEGs of ~500×375 (or 375×500) from scikit-image's photos; skipped when present."""
    if (directory / "manifest.json").exists():
        return directory
    from skimage import data

    photos = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.hubble_deep_field(),
    ]
    photos += [data.immunohistochemistry(), data.retina(), np.stack([data.camera()] * 3, axis=-1)]
    rng = np.random.default_rng(seed)
    with ShardSetWriter(
        directory, "photos", classes=[str(i) for i in range(len(photos))], max_count=500
    ) as w:
        for number in range(count):
            label = int(rng.integers(len(photos)))
            photo = Image.fromarray(photos[label])
            side = rng.uniform(0.5, 1.0) * min(photo.size)
            left = rng.uniform(0, photo.size[0] - side)
            top = rng.uniform(0, photo.size[1] - side * 0.75)
            box = (left, top, left + side, top + side * 0.75)
            size = (500, 375) if rng.random() < 0.7 else (375, 500)
            image = photo.resize(size, Image.Resampling.BICUBIC, box=box)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            w.add(f"p{number:06d}", buffer.getvalue(), "jpg", label=label, size=size)
    return directory


def baseline(directory: Path, view: View, batch_size: int, workers: int) -> Iterable[torch.Tensor]:
    """webdataset + PIL decode + torchvision v2 on PIL images, in a DataLoader."""
    size = [view.image_size, view.image_size]
    ops: list[v2.Transform] = [v2.RandomResizedCrop(size, scale=view.scale, antialias=True)]
    if view.randaugment_n:
        interpolation = v2.InterpolationMode(view.randaugment_interpolation)
        ops.append(
            v2.RandAugment(view.randaugment_n, view.randaugment_m, 31, interpolation, fill=128)
        )
    ops += [
        v2.RandomHorizontalFlip(),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(view.mean), list(view.std)),
    ]
    transform = v2.Compose(ops)
    urls = [str(p) for p in sorted(directory.glob("*.tar"))]
    dataset = (
        wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_worker)
        .decode("pil")
        .to_tuple("jpg", "cls")
        .map_tuple(transform, int)
        .batched(batch_size, partial=True)
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, prefetch_factor=4
    )
    return (images for images, _ in loader)


def ours(
    directory: Path, view: View, batch_size: int, workers: int, backend: Backend
) -> Iterable[torch.Tensor]:
    loader = ImageLoader(
        ShardSet(directory),
        view,
        batch_size=batch_size,
        shuffle=True,
        backend=backend,
        workers=workers,
    )
    return (batch.images for batch in loader)


def rate(batches: Iterable[torch.Tensor]) -> float:
    """Images/s over one epoch, not counting start-up (clock starts at the first batch)."""
    start, images = 0.0, 0
    for number, batch in enumerate(batches):
        if number == 0:
            start = time.perf_counter()
        else:
            images += len(batch)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/ns-bench-photos"))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backends", default="baseline,torch,dali-cpu")
    args = parser.parse_args()
    directory = write_photos(args.data / str(args.images), args.images)
    print(
        f"{args.images} JPEGs ~500×375 → {args.size} px, batch {args.batch_size}, {args.workers} workers/threads\n"
    )
    print("| loader | RandAugment | interpolation | images/s | × baseline |")
    print("|---|---|---|---|---|")
    settings = [(0, "nearest"), (2, "nearest"), (2, "bilinear")]
    for n, interpolation in settings:
        view = View(
            image_size=args.size,
            train=True,
            randaugment_n=n,
            randaugment_interpolation=interpolation,
        )
        reference = None
        for name in args.backends.split(","):
            if name == "baseline":
                speed = reference = rate(baseline(directory, view, args.batch_size, args.workers))
                label = "webdataset + PIL + torchvision v2 (baseline)"
            else:
                speed = rate(ours(directory, view, args.batch_size, args.workers, name))  # type: ignore[arg-type]
                label = f"ImageLoader {name}"
            ratio = f"{speed / reference:.2f}" if reference else "—"
            augment = f"({n}, 9)" if n else "off"
            print(
                f"| {label} | {augment} | {interpolation if n else '—'} | {speed:,.0f} | {ratio} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
