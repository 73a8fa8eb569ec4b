"""Training images/s of `ns train` (the `train()` function) vs a plain hand-written timm loop.

Same model, data, batch, resolution, precision and augmentation (random-resized crop, flip,
RandAugment(2, 9)); the plain loop reads the same shards with webdataset + PIL + torchvision v2 in
a DataLoader and steps timm's RMSpropTF. Both are timed end to end over the same number of steps
on photos of about 500×375 (see bench_shard.build_corpus). Two rates per loop: end to end
(start-up, first batches, final checkpoint included) and steady (from step 10 to the last step,
what a long job runs at; for `ns train` from the times in its metrics.jsonl).

    uv run --frozen python bench/bench_train.py --steps 30 --image-size 128 --batch-size 32
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
import webdataset as wds
from bench_shard import build_corpus
from PIL import Image
from timm.optim import create_optimizer_v2
from torchvision.transforms import v2

from ns_data.loader import resolve_backend
from ns_data.shard_set import ShardSet
from ns_data.sharding import ShardConfig, shard_images
from ns_train.config import NoiseConfig, OptimConfig, TrainConfig
from ns_train.data import TrainInputs
from ns_train.metrics import read_metrics
from ns_train.trainer import train

Rates = tuple[float, float]
"""Images/s end to end, and steady (steps 10 … last)."""

WARM_STEPS = 10


def plain_loop(shards: Path, args: argparse.Namespace) -> Rates:
    """Images/s of a hand-written timm loop over the same shards."""
    started = time.perf_counter()
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.RandomResizedCrop(args.image_size, antialias=True),
            v2.RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31, fill=128),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    urls = [str(p) for p in sorted(shards.glob("*.tar"))]
    dataset = (
        wds.WebDataset(urls, shardshuffle=False, empty_check=False)
        .shuffle(1000)
        .map(lambda s: (transform(Image.open(io.BytesIO(s["jpg"])).convert("RGB")), int(s["cls"])))
        .repeat()
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, num_workers=args.workers
    )
    model = timm.create_model(args.model, num_classes=10, drop_rate=0.2, drop_path_rate=0.2)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = create_optimizer_v2(
        model, "rmsproptf", lr=0.002, weight_decay=1e-5, momentum=0.9, eps=1e-3
    )
    for step, (images, labels) in enumerate(loader, start=1):
        loss = F.cross_entropy(
            model(images.contiguous(memory_format=torch.channels_last)), labels, label_smoothing=0.1
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == WARM_STEPS:
            warm = time.perf_counter()
        if step == args.steps:
            break
    ended = time.perf_counter()
    return (
        args.steps * args.batch_size / (ended - started),
        (args.steps - WARM_STEPS) * args.batch_size / (ended - warm),
    )


def ns_train(shards: Path, backend: str, out: Path, args: argparse.Namespace) -> Rates:
    """Images/s of `ns_train.trainer.train` on the same shards."""
    per_epoch = len(ShardSet(shards)) // args.batch_size
    config = TrainConfig(
        model=args.model,
        image_size=args.image_size,
        epochs=args.steps / per_epoch,
        batch_size=args.batch_size,
        ema_decay=0.9999,
        optim=OptimConfig(name="rmsprop"),
        noise=NoiseConfig(crop_scale=(0.08, 1.0)),
        backend=backend,
        workers=args.workers,
        device="cpu",
    )
    started = time.perf_counter()
    result = train(config, TrainInputs(labeled=shards), out, show_progress=False)
    ended = time.perf_counter()
    times = {
        r["step"]: r["time"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"
    }
    steady = (
        (result.steps - WARM_STEPS) * args.batch_size / (times[result.steps] - times[WARM_STEPS])
    )
    return result.steps * args.batch_size / (ended - started), steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ns-bench")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    corpus = args.cache / f"photos-{args.files}"
    build_corpus(corpus, args.files)
    shards = args.cache / f"shards-{args.files}"
    if not (shards / "manifest.json").exists():
        shard_images(corpus, shards, ShardConfig(max_count=250))
    rows = [("plain timm loop (webdataset + PIL + torchvision v2)", plain_loop(shards, args))]
    backends = ["torch"] + (
        ["dali-cpu"] if resolve_backend("auto", torch.device("cpu")) == "dali-cpu" else []
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            rows.append(
                (
                    f"ns train, {backend} loader",
                    ns_train(shards, backend, Path(tmp) / backend, args),
                )
            )
    print(
        f"\n{args.model} at {args.image_size} px, batch {args.batch_size}, {args.steps} steps, {args.workers} workers, fp32 channels-last, CPU\n"
    )
    print("| loop | images/s end to end | vs plain | images/s steady | vs plain |")
    print("| --- | ---: | ---: | ---: | ---: |")
    (plain_total, plain_steady) = rows[0][1]
    for name, (total, steady) in rows:
        print(
            f"| {name} | {total:.1f} | {total / plain_total:.2f}× "
            f"| {steady:.1f} | {steady / plain_steady:.2f}× |"
        )


if __name__ == "__main__":
    main()
