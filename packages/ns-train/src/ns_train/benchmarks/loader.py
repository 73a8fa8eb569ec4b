"""The loader backends against webdataset + PIL + torchvision v2 in a torch DataLoader.

Both sides apply the same train view (random-resized crop, RandAugment off or (2, 9) with
nearest-neighbour geometry, flip, normalize) with the same number of workers (DataLoader
processes; one single-threaded DALI pipeline per worker on the CPU). Images/s over one epoch,
the clock starting at the first batch (start-up left out). Where DALI imports, DALI's own
webdataset reader + decoder with nothing else is timed too: the ceiling of any loader that
decodes every image in full.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Sized
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Candidate, Metrics, rows_of

if TYPE_CHECKING:
    from ns_data.loading.views import View

BASELINE = "webdataset + PIL + torchvision v2"


def run(ctx: Context) -> Section:
    from ns_data.loading.loader import dali_available
    from ns_data.loading.views import View

    shards = ctx.shard_set()
    batch = ctx.sizes.loader_batch
    backends = ["torch"]
    if dali_available():
        backends.append("dali-gpu" if ctx.cuda else "dali-cpu")
    ctx.begin("loader")
    rows, notes = [], []
    for n in (0, 2):
        view = View(image_size=ctx.sizes.loader_size, train=True, randaugment_n=n)
        augment = f"RandAugment ({n}, {view.randaugment_m})" if n else "no RandAugment"
        base = f"{BASELINE}, {augment}"
        candidates = [Candidate(base, partial(_baseline, shards, view, batch, ctx))]
        candidates += [
            Candidate(
                f"ImageLoader {b}, {augment}",
                partial(_ours, shards, view, batch, ctx, b),
                baseline=base,
            )
            for b in backends
        ]
        if n == 0 and dali_available():
            decoder = "nvJPEG" if ctx.cuda else "CPU"
            candidates.append(
                Candidate(
                    f"DALI reader + {decoder} decode alone",
                    partial(_decode_only, shards, batch, ctx.workers, ctx.cuda),
                    baseline=base,
                )
            )
        rows += rows_of(candidates, ctx.rounds(candidates), {"images/s": "images/s"})
    if not dali_available():
        notes.append("DALI does not import here: only the torch backend was timed")
    return Section(
        "loader",
        f"ImageLoader backends vs {BASELINE} in a DataLoader",
        {
            "data": ctx.data_name(),
            "image side": ctx.sizes.loader_size,
            "batch": batch,
            "workers": ctx.workers,
            "device": ctx.device,
        },
        rows,
        notes,
    )


def _baseline(shards: Path, view: View, batch_size: int, ctx: Context) -> Metrics:
    """webdataset + PIL decode + torchvision v2 on PIL images, in a DataLoader; to the device."""
    import torch
    import webdataset as wds
    from torchvision.transforms import v2

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
    urls = [str(p) for p in sorted(shards.glob("*.tar"))]
    dataset = (
        wds.WebDataset(urls, shardshuffle=False, empty_check=False)  # tars split by worker
        .decode("pil")
        .to_tuple("jpg")
        .map_tuple(transform)
        .batched(batch_size, partial=True)
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=ctx.workers,
        prefetch_factor=4 if ctx.workers else None,
        pin_memory=ctx.cuda,
    )
    return _rate(images.to(ctx.device, non_blocking=True) for (images,) in loader)


def _ours(shards: Path, view: View, batch_size: int, ctx: Context, backend: str) -> Metrics:
    """The loader as the engine builds it: a `LoaderConfig` of backend and workers."""
    from ns_data.loading.config import LoaderConfig
    from ns_data.shards.reader import ShardSet

    config = LoaderConfig(backend=backend, workers=ctx.workers)  # type: ignore[arg-type]  # checked there
    loader = config.build(
        ShardSet(shards), view, batch_size=batch_size, device=ctx.device, shuffle=True
    )
    return _rate(batch.images for batch in loader)


def _decode_only(shards: Path, batch_size: int, threads: int, gpu: bool) -> Metrics:
    """DALI's webdataset reader + decoder alone (nvJPEG on the GPU, libjpeg-turbo on the CPU)."""
    from nvidia.dali import fn, pipeline_def
    from nvidia.dali.types import DALIImageType

    from ns_data.shards.reader import ShardSet

    tars = sorted(shards.glob("*.tar"))

    @pipeline_def
    def decode_only():
        jpegs = fn.readers.webdataset(
            paths=[str(t) for t in tars],
            index_paths=[str(t.with_suffix(".idx")) for t in tars],
            ext=["jpg"],
        )
        device = "mixed" if gpu else "cpu"
        return fn.decoders.image(jpegs, device=device, output_type=DALIImageType.RGB)  # type: ignore[arg-type]  # one output: one DataNode

    pipe = decode_only(
        batch_size=batch_size, num_threads=max(1, threads), device_id=0 if gpu else None
    )
    pipe.build()
    count = max(2, len(ShardSet(shards)) // batch_size)
    return _rate(pipe.run()[0] for _ in range(count))


def _rate(batches: Iterable[Sized]) -> Metrics:
    """Images/s over one epoch, not counting start-up (the clock starts at the first batch)."""
    import torch

    # An earlier DALI loader still waiting in a reference cycle must go now: collected in a
    # forked DataLoader worker, its pipeline would abort that worker.
    gc.collect()
    start, images = time.perf_counter(), 0
    for number, batch in enumerate(batches):
        if number == 0:
            start = time.perf_counter()
        else:
            images += len(batch)
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return {"images/s": images / max(time.perf_counter() - start, 1e-9)}
