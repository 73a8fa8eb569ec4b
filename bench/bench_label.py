"""Images/s of `ns label` (the `label()` function) against a plain timm inference loop.

Same model (random-init efficientnet_b0, 1000 classes), same shard set of realistic JPEGs
(random crops of scikit-image photos resized to 500×375, q90), same batch, float32,
channels-last, eval mode. The plain loop reads the tars with webdataset, decodes with PIL,
resizes and center-crops with torchvision in a DataLoader, and runs under torch.inference_mode.
Both are timed end to end (loader start-up included; `label()` also loads and hashes the
checkpoint and writes labels, summary and plot). Runs alternate; the best of `--repeats` counts.

    uv run --frozen python bench/bench_label.py --images 256 --size 224 --batch 64
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from ns_data.loading.views import IMAGENET_MEAN, IMAGENET_STD
from ns_data.shards.writer import ShardSetWriter
from ns_models import CheckpointConfig, build_model, default_noise, save_checkpoint
from ns_train.labeler import label

MODEL = "efficientnet_b0"


def make_shards(directory: Path, count: int, per_shard: int) -> Path:
    """`count` 500×375 JPEGs cut from scikit-image photos, unlabeled, `per_shard` per tar."""
    from skimage import data

    photos = [
        data.astronaut(),
        data.coffee(),
        data.rocket(),
        data.chelsea(),
        data.hubble_deep_field(),
    ]
    rng = np.random.default_rng(0)
    with ShardSetWriter(directory, "photos", classes=None, max_count=per_shard) as writer:
        for number in range(count):
            photo = photos[number % len(photos)]
            h, w = photo.shape[:2]
            ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = Image.fromarray(photo[top : top + ch, left : left + cw]).resize((500, 375))
            buffer = io.BytesIO()
            crop.save(buffer, format="JPEG", quality=90)
            writer.add(f"p{number:05d}", buffer.getvalue(), "jpg", size=(500, 375))
    return directory


def make_checkpoint(directory: Path, size: int) -> Path:
    model = build_model(MODEL, 1000, noise=default_noise(MODEL))
    config = CheckpointConfig(
        model_name=MODEL,
        num_classes=1000,
        class_names=[f"c{i}" for i in range(1000)],
        image_size=size,
        noise=default_noise(MODEL),
    )
    return save_checkpoint(directory, model, config)


def plain_loop(shards: Path, size: int, batch: int, workers: int) -> int:
    """The hand-written baseline: webdataset + PIL + torchvision, timm model in eval."""
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(round(size / 0.875), antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ]
    )
    urls = [str(p) for p in sorted(shards.glob("*.tar"))]
    dataset = wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("jpg")
    dataset = dataset.map_tuple(transform)
    loader = DataLoader(dataset.batched(batch), batch_size=None, num_workers=workers)
    model = build_model(MODEL, 1000).eval().to(memory_format=torch.channels_last)
    done = 0
    with torch.inference_mode():
        for (images,) in loader:
            logits = model(images.contiguous(memory_format=torch.channels_last))
            probs = torch.softmax(logits.float(), dim=1).topk(10, dim=1)
            done += len(probs.values)
    return done


def timed(run: Callable[[], tuple[int, float | None]]) -> tuple[float, float | None]:
    """End-to-end images/s, and the labeling loop's own images/s when the run reports it."""
    started = time.perf_counter()
    images, loop_rate = run()
    return images / (time.perf_counter() - started), loop_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backends", default="torch,dali-cpu")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ns-bench-label-"))
    shards = make_shards(work / "shards", args.images, per_shard=max(1, args.images // 4))
    checkpoint = make_checkpoint(work / "teacher", args.size)
    load_before = os.getloadavg()

    def ns_label(backend: str) -> Callable[[], tuple[int, float | None]]:
        def run() -> tuple[int, float | None]:
            out = Path(tempfile.mkdtemp(dir=work))
            summary = label(
                checkpoint, shards, out, batch_size=args.batch, backend=backend,
                device="cpu", workers=args.workers, show_progress=False,
            )  # fmt: skip
            return summary.samples, summary.images_per_second

        return run

    runs: dict[str, Callable[[], tuple[int, float | None]]] = {
        "plain loop (webdataset + PIL + torchvision)": lambda: (
            plain_loop(shards, args.size, args.batch, args.workers),
            None,
        ),
        **{f"ns label, backend {b}": ns_label(b) for b in args.backends.split(",")},
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    loop_rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            rate, loop_rate = timed(run)
            rates[name].append(rate)
            if loop_rate is not None:
                loop_rates[name].append(loop_rate)
    base = max(rates[next(iter(runs))])
    print(
        f"{MODEL} at {args.size} px, batch {args.batch}, float32, channels-last, "
        f"{args.images} JPEGs 500×375, {args.workers} loader workers, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__} "
        f"{torch.get_num_threads()} threads; load average {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n"
    )
    print("| pipeline | images/s end to end (best) | median | vs plain | labeling loop only |")
    print("|---|---|---|---|---|")
    for name, values in rates.items():
        best = max(values)
        loop = f"{max(loop_rates[name]):.1f}" if loop_rates[name] else "—"
        print(
            f"| {name} | {best:.1f} | {statistics.median(values):.1f} | {best / base:.2f}× "
            f"| {loop} |"
        )


if __name__ == "__main__":
    main()
