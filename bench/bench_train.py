"""Training images/s of `ns train` (the `train()` function) vs a plain hand-written timm loop.

Same model, data, batch, resolution, precision and augmentation (random-resized crop, flip,
RandAugment(2, 9)); the plain loop reads the same shards with webdataset + PIL + torchvision v2 in
a DataLoader and steps timm's RMSpropTF. Both are timed end to end over the same number of steps
on photos of about 500×375 (see bench_shard.build_corpus), each loop `--repeats` times,
interleaved, and the median reported. Two rates per loop: end to end
(start-up, first batches, final checkpoint included) and steady (from step 10 to the last step,
what a long job runs at; for `ns train` from the times in its metrics.jsonl).

    uv run --frozen python bench/bench_train.py --steps 60 --image-size 128 --batch-size 32 --repeats 3
    python bench/bench_train.py --device cuda --bf16 --image-size 224 --batch-size 256 \
        --workers 16 --files 8000 --steps 100 --peak-tflops 989   # a GPU machine

On a GPU both loops run under bf16 autocast (`--bf16`), `ns train` with DALI on the GPU; the
fastest loop's FLOP rate is reported against a large bf16 matmul's and, with `--peak-tflops`, the
datasheet's peak.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
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
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import v2

from ns_data.ingest.pipeline import ShardConfig, shard_images
from ns_data.loading.loader import resolve_backend
from ns_data.shards.reader import ShardSet
from ns_train.config import NoiseConfig, OptimConfig, TrainConfig
from ns_train.data import TrainInputs
from ns_train.jsonl import read_jsonl
from ns_train.trainer import train

Rates = tuple[float, float]
"""Images/s end to end, and steady (steps 10 … last)."""

WARM_STEPS = 10
PLAIN = "plain timm loop (webdataset + PIL + torchvision v2)"


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
    device = torch.device(args.device)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    model = timm.create_model(args.model, num_classes=10, drop_rate=0.2, drop_path_rate=0.2)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = create_optimizer_v2(
        model, "rmsproptf", lr=0.002, weight_decay=1e-5, momentum=0.9, eps=1e-3
    )
    for step, (images, labels) in enumerate(loader, start=1):
        images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels.to(device), label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == WARM_STEPS:
            warm = finished(device)
        if step == args.steps:
            break
    ended = finished(device)
    return (
        args.steps * args.batch_size / (ended - started),
        (args.steps - WARM_STEPS) * args.batch_size / (ended - warm),
    )


def finished(device: torch.device) -> float:
    """The time once the device has run everything queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def training_flops_per_image(args: argparse.Namespace) -> float:
    """Training FLOPs per image: 3× the forward pass's (the usual convention: the backward costs
    twice the forward). The forward's convolutions and matmuls are counted by torch's FLOP
    counter; its count for `convolution_backward` ignores groups, wildly over-counting the
    depthwise convolutions, so the backward is not counted directly."""
    model = timm.create_model(args.model, num_classes=10).eval()
    images = torch.randn(1, 3, args.image_size, args.image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(images)
    return 3 * counter.get_total_flops()


def measured_matmul_tflops(device: torch.device, size: int = 8192, reps: int = 20) -> float:
    """What a large bf16 matmul reaches on this device: the practical ceiling for the model."""
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    a @ b
    started = finished(device)
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (finished(device) - started) / 1e12


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
        device=args.device,
        bf16=args.bf16,
    )
    started = time.perf_counter()
    result = train(config, TrainInputs(labeled=shards), out, show_progress=False)
    ended = time.perf_counter()
    times = {
        r["step"]: r["time"] for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "train"
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in both loops")
    parser.add_argument(
        "--peak-tflops", type=float, help="the device's datasheet peak (e.g. 989 for H100 bf16)"
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ns-bench")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    corpus = args.cache / f"photos-{args.files}"
    build_corpus(corpus, args.files)
    shards = args.cache / f"shards-{args.files}"
    if not (shards / "manifest.json").exists():
        shard_images(corpus, shards, ShardConfig(max_count=250))
    auto = resolve_backend("auto", torch.device(args.device))
    backends = ["torch"] + ([auto] if auto != "torch" else [])
    runs: dict[str, list[Rates]] = {PLAIN: []} | {f"ns train, {b} loader": [] for b in backends}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # interleaved, so drifts of the machine hit every loop
            runs[PLAIN].append(plain_loop(shards, args))
            for backend in backends:
                out = Path(tmp) / f"{backend}-{repeat}"
                runs[f"ns train, {backend} loader"].append(ns_train(shards, backend, out, args))
    precision = "bf16 autocast" if args.bf16 else "fp32"
    print(
        f"\n{args.model} at {args.image_size} px, batch {args.batch_size}, {args.steps} steps, "
        f"{args.workers} workers, {precision} channels-last, {args.device}; "
        f"median of {args.repeats} interleaved runs\n"
    )
    print(
        "| loop | images/s end to end | vs plain | images/s steady | vs plain | steady, all runs |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    plain_total, plain_steady = (statistics.median(r) for r in zip(*runs[PLAIN], strict=True))
    for name, rates in runs.items():
        total, steady = (statistics.median(r) for r in zip(*rates, strict=True))
        every = ", ".join(f"{s:.1f}" for _, s in rates)
        print(
            f"| {name} | {total:.1f} | {total / plain_total:.2f}× "
            f"| {steady:.1f} | {steady / plain_steady:.2f}× | {every} |"
        )
    flops = training_flops_per_image(args)
    best = max(statistics.median(s for _, s in rates) for rates in runs.values())
    achieved = flops * best / 1e12
    print(
        f"\ntraining FLOPs per image {flops / 1e9:.2f} G; fastest steady loop {achieved:.3f} TFLOP/s"
    )
    if args.device.startswith("cuda"):
        ceiling = measured_matmul_tflops(torch.device(args.device))
        print(
            f"bf16 matmul {ceiling:.0f} TFLOP/s on this GPU: the model reaches {achieved / ceiling:.1%}"
        )
    if args.peak_tflops:
        print(
            f"of the datasheet's {args.peak_tflops:.0f} TFLOP/s: {achieved / args.peak_tflops:.1%}"
        )


if __name__ == "__main__":
    main()
