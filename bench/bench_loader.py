"""Images/s of the loader backends vs the usual baseline, at 224 px on realistic JPEGs.

Baseline: webdataset + PIL + torchvision v2 in a torch DataLoader, the same ops (random-resized
crop, RandAugment, flip, normalize) and the same number of workers as DALI has threads.
Data: photos of about 500×375 cut from scikit-image's sample photos (random crops and rescales,
JPEG q90), written once with ShardSetWriter under --data. Not a test: run it by hand.

    uv run --frozen python bench/bench_loader.py --images 2000 --workers 2 --repeats 5
    python bench/bench_loader.py --images 20000 --workers 16 --device cuda \
        --backends baseline,torch,dali-gpu          # a GPU machine

With a DALI backend it also times DALI's reader + decoder alone, the decoder's limit.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import time
from collections.abc import Iterable, Sized
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torchvision.transforms import v2

from ns_data.loading.loader import Backend, ImageLoader
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet
from ns_data.shards.writer import ShardSetWriter


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


def baseline(
    directory: Path, view: View, batch_size: int, workers: int, device: str
) -> Iterable[torch.Tensor]:
    """webdataset + PIL decode + torchvision v2 on PIL images, in a DataLoader; to `device`."""
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
        dataset,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4,
        pin_memory=device.startswith("cuda"),
    )
    return (images.to(device, non_blocking=True) for images, _ in loader)


def ours(
    directory: Path, view: View, batch_size: int, workers: int, backend: Backend, device: str
) -> Iterable[torch.Tensor]:
    loader = ImageLoader(
        ShardSet(directory),
        view,
        batch_size=batch_size,
        shuffle=True,
        backend=backend,
        workers=workers,
        device=device,
    )
    return (batch.images for batch in loader)


def decoder_limit(directory: Path, batch_size: int, threads: int, gpu: bool) -> float:
    """Images/s of DALI's own webdataset reader + decoder and nothing else (nvJPEG on the GPU,
    libjpeg-turbo on the CPU): the ceiling for any loader that decodes every image in full."""
    from nvidia.dali import fn, pipeline_def, types

    tars = sorted(directory.glob("*.tar"))

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=0 if gpu else None)
    def decode_only():  # type: ignore[no-untyped-def]
        jpegs = fn.readers.webdataset(
            paths=[str(t) for t in tars],
            index_paths=[str(t.with_suffix(".idx")) for t in tars],
            ext=["jpg"],
        )
        return fn.decoders.image(jpegs, device="mixed" if gpu else "cpu", output_type=types.RGB)

    pipe = decode_only()
    pipe.build()
    count = len(ShardSet(directory)) // batch_size
    return rate(pipe.run()[0] for _ in range(count))


def rate(batches: Iterable[Sized]) -> float:
    """Images/s over one epoch, not counting start-up (clock starts at the first batch)."""
    # An earlier DALI loader still waiting in a reference cycle must go now: collected in a
    # forked DataLoader worker, its pipeline would abort that worker.
    gc.collect()
    start, images = 0.0, 0
    for number, batch in enumerate(batches):
        if number == 0:
            start = time.perf_counter()
        else:
            images += len(batch)
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/ns-bench-photos"))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backends", default="baseline,torch,dali-cpu")
    parser.add_argument("--device", default="cpu", help="where batches go: cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    directory = write_photos(args.data / str(args.images), args.images)
    print(
        f"{args.images} JPEGs ~500×375 → {args.size} px, batch {args.batch_size}, {args.workers} workers/threads\n"
    )
    print(
        f"median of {args.repeats} interleaved rounds; × baseline: median of each round's ratio\n"
    )
    print("| loader | RandAugment | interpolation | images/s | × baseline | each run |")
    print("|---|---|---|---|---|---|")
    settings = [(0, "nearest"), (2, "nearest"), (2, "bilinear")]
    for n, interpolation in settings:
        view = View(
            image_size=args.size,
            train=True,
            randaugment_n=n,
            randaugment_interpolation=interpolation,
        )
        names = args.backends.split(",")
        runs: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeats):  # interleaved, so drifts of the machine hit every loader
            for name in names:
                if name == "baseline":
                    batches = baseline(directory, view, args.batch_size, args.workers, args.device)
                else:
                    batches = ours(
                        directory, view, args.batch_size, args.workers, name, args.device
                    )  # type: ignore[arg-type]
                runs[name].append(rate(batches))
        for name, speeds in runs.items():
            speed = statistics.median(speeds)
            label = (
                "webdataset + PIL + torchvision v2 (baseline)"
                if name == "baseline"
                else f"ImageLoader {name}"
            )
            ratio = (  # each run against the baseline run of its round: drifts cancel
                f"{statistics.median(a / b for a, b in zip(speeds, runs['baseline'], strict=True)):.2f}"
                if "baseline" in runs
                else "—"
            )
            augment = f"({n}, 9)" if n else "off"
            every = ", ".join(f"{v:,.0f}" for v in speeds)
            print(
                f"| {label} | {augment} | {interpolation if n else '—'} | {speed:,.0f} | {ratio} | {every} |",
                flush=True,
            )
    if any(name.startswith("dali") for name in args.backends.split(",")):
        gpu = args.device.startswith("cuda")
        limit = decoder_limit(directory, args.batch_size, args.workers, gpu)
        decoder = "nvJPEG (mixed)" if gpu else "CPU"
        print(f"\nDALI reader + {decoder} decode alone, nothing else: {limit:,.0f} images/s")


if __name__ == "__main__":
    main()
