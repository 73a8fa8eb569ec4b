"""`ns train` (the engine's `train()`) against a plain hand-written timm training loop.

Same model, shard set, batch, resolution, precision (float32 on the CPU, bf16 autocast on a
GPU), channels-last and augmentation (random-resized crop, flip, RandAugment (2, 9)); the plain
loop reads the shards with webdataset + PIL + torchvision v2 in a DataLoader and steps timm's
RMSpropTF, as `ns train` does by default. A second plain loop runs as timm's train.py does
without flags (NCHW, float32 even on a GPU), what a user of timm's script gets out of the box; a
note gives each `ns train` row against it. All run the same number of steps. Two rates: end to
end (start-up, first batches and the final checkpoint included) and steady (from step 10 to the
last, what a long job runs at; for `ns train` from the times in its metrics.jsonl), the latter
when there are 20 steps or more. A note gives the training FLOPs per image and the fastest
loop's FLOP rate (on a GPU also against a large bf16 matmul's).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Candidate, Metrics, Row, ratio, rows_of
from ns_train.errors import TrainError

PLAIN = "plain timm loop (webdataset + PIL + torchvision v2)"
TIMM_DEFAULTS = "plain timm loop, timm train.py's defaults (NCHW, float32)"
WARM_STEPS = 10
"""Steps left out of the steady rate (`ns train` logs its time every 10 steps)."""
UNITS = {"images/s": "images/s", "images/s, steady": "images/s"}


def run(ctx: Context) -> Section:
    from ns_data.loading.loader import dali_available
    from ns_data.shards.reader import ShardSet

    shards = ctx.shard_set()
    data = ShardSet(shards)
    if not data.num_classes:
        raise TrainError(
            f"{shards} is unlabeled: the train benchmark needs a labeled shard set "
            "(leave `train` out, or pass a labeled set to --data)"
        )
    sizes = ctx.sizes
    if len(data) < sizes.train_batch:
        raise TrainError(
            f"{shards} holds {len(data)} images, fewer than one batch of {sizes.train_batch}"
        )
    backends = ["torch"] + (["dali-gpu" if ctx.cuda else "dali-cpu"] if dali_available() else [])
    candidates = [
        Candidate(PLAIN, partial(_plain, shards, data.num_classes, ctx, tuned=True)),
        Candidate(
            TIMM_DEFAULTS, partial(_plain, shards, data.num_classes, ctx, tuned=False), PLAIN
        ),
    ]
    candidates += [
        Candidate(f"ns train, {b} loader", partial(_ns, shards, len(data), ctx, b), PLAIN)
        for b in backends
    ]
    ctx.begin("train")
    runs = ctx.rounds(candidates)
    rows = rows_of(candidates, runs, UNITS)
    return Section(
        "train",
        "`ns train` vs a plain timm training loop",
        {
            "data": ctx.data_name(),
            "model": ctx.settings.model,
            "image side": sizes.train_size,
            "batch": sizes.train_batch,
            "steps": sizes.train_steps,
            "workers": ctx.workers,
            "device": ctx.device,
            "precision": ("bf16 autocast" if ctx.cuda else "float32") + ", channels-last",
        },
        rows,
        _defaults_notes(rows) + _flops_notes(ctx, data.num_classes, rows),
    )


def _defaults_notes(rows: list[Row]) -> list[str]:
    """Each `ns train` row against timm train.py's defaults: the median of the per-round ratios."""
    by_key = {(r.name, r.metric): r for r in rows}
    notes = []
    for row in rows:
        defaults = by_key.get((TIMM_DEFAULTS, row.metric))
        if not row.name.startswith("ns train") or defaults is None:
            continue
        pairs = zip(row.values, defaults.values, strict=True)
        ratios = [ratio(ours, theirs, row.unit) for ours, theirs in pairs]
        notes.append(
            f"{row.name}, {row.metric}: {statistics.median(ratios):.2f}× timm train.py's defaults"
        )
    return notes


def _flops_notes(ctx: Context, num_classes: int, rows: list[Row]) -> list[str]:
    """Training FLOPs per image, the fastest loop's FLOP rate and, on a GPU, a bf16 matmul's.

    3× the forward pass's FLOPs (the usual convention: the backward costs twice the forward);
    torch's counter is not used on the backward, whose `convolution_backward` count ignores
    groups and so over-counts the depthwise convolutions wildly."""
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    size = ctx.sizes.train_size
    model = timm.create_model(ctx.settings.model, num_classes=num_classes).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    flops = 3 * counter.get_total_flops()
    steady = [r.median for r in rows if r.metric == "images/s, steady"]
    fastest = max(steady or [r.median for r in rows])
    notes = [
        f"training FLOPs per image {flops / 1e9:.2f} G; fastest loop {flops * fastest / 1e12:.3f} "
        "TFLOP/s"
    ]
    if ctx.cuda:
        ceiling = _matmul_tflops(torch.device(ctx.device))
        notes.append(
            f"a large bf16 matmul reaches {ceiling:.0f} TFLOP/s here: the fastest loop is "
            f"{flops * fastest / 1e12 / ceiling:.1%} of it"
        )
    return notes


def _matmul_tflops(device: Any, size: int = 8192, reps: int = 20) -> float:
    """What a large bf16 matmul reaches on this GPU: the practical ceiling for the model."""
    import torch

    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    a @ b
    started = _finished(device)
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (_finished(device) - started) / 1e12


def _ns(shards: Path, samples: int, ctx: Context, backend: str) -> Metrics:
    """`train()` with the config built as `ns train --set ...` builds it."""
    from ns_train.config import TrainConfig
    from ns_train.config_files import resolve
    from ns_train.data import TrainInputs
    from ns_train.jsonl import read_jsonl
    from ns_train.trainer import train

    sizes = ctx.sizes
    per_epoch = max(1, samples // sizes.train_batch)
    overrides = [
        f"model={ctx.settings.model!r}",
        f"image_size={sizes.train_size}",
        f"epochs={sizes.train_steps / per_epoch!r}",
        f"batch_size={sizes.train_batch}",
        f"loader.backend={backend!r}",
        f"loader.workers={ctx.workers}",
        f"device={ctx.device!r}",
        f"bf16={str(ctx.cuda).lower()}",
    ]
    config = resolve(TrainConfig, TrainConfig(), None, overrides)
    out = Path(tempfile.mkdtemp(dir=ctx.work, prefix="train-"))
    started = time.perf_counter()
    result = train(config, TrainInputs(labeled=shards), out / "job", show_progress=False)
    seconds = time.perf_counter() - started
    rates = {"images/s": result.steps * sizes.train_batch / seconds}
    times = {
        r["step"]: r["time"]
        for r in read_jsonl(out / "job" / "metrics.jsonl")
        if r["kind"] == "train"
    }
    last = max(times, default=0)
    if WARM_STEPS in times and last >= 2 * WARM_STEPS:
        steps = last - WARM_STEPS
        rates["images/s, steady"] = steps * sizes.train_batch / (times[last] - times[WARM_STEPS])
    return rates


def _plain(shards: Path, num_classes: int, ctx: Context, *, tuned: bool) -> Metrics:
    """A hand-written timm loop over the same shards: `tuned` with ns's channels-last (and bf16
    autocast on a GPU), else as timm's train.py runs without flags (NCHW, float32)."""
    import timm
    import torch
    import torch.nn.functional as F
    import webdataset as wds
    from PIL import Image
    from timm.optim import create_optimizer_v2
    from torchvision.transforms import v2

    from ns_data.loading.views import IMAGENET_MEAN, IMAGENET_STD

    sizes = ctx.sizes
    started = time.perf_counter()
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.RandomResizedCrop(sizes.train_size, antialias=True),
            v2.RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31, fill=128),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ]
    )

    def sample(s: dict[str, Any]) -> tuple[Any, int]:
        return transform(Image.open(io.BytesIO(s["jpg"])).convert("RGB")), int(s["cls"])

    urls = [str(p) for p in sorted(shards.glob("*.tar"))]
    dataset = (
        wds.WebDataset(urls, shardshuffle=False, empty_check=False)
        .shuffle(1000)
        .map(sample)
        .repeat()
    )
    device = torch.device(ctx.device)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=sizes.train_batch, num_workers=ctx.workers, pin_memory=ctx.cuda
    )
    model = timm.create_model(
        ctx.settings.model, num_classes=num_classes, drop_rate=0.2, drop_path_rate=0.2
    )
    layout = torch.channels_last if tuned else torch.contiguous_format
    model = model.to(device).to(memory_format=layout).train()
    optimizer = create_optimizer_v2(
        model, "rmsproptf", lr=0.002, weight_decay=1e-5, momentum=0.9, eps=1e-3
    )
    warm = started
    for step, (images, labels) in enumerate(loader, start=1):
        images = images.to(device, non_blocking=True, memory_format=layout)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=ctx.cuda and tuned):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels.to(device), label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == WARM_STEPS:
            warm = _finished(device)
        if step == sizes.train_steps:
            break
    ended = _finished(device)
    rates = {"images/s": sizes.train_steps * sizes.train_batch / (ended - started)}
    if sizes.train_steps >= 2 * WARM_STEPS:
        steady = (sizes.train_steps - WARM_STEPS) * sizes.train_batch / (ended - warm)
        rates["images/s, steady"] = steady
    return rates


def _finished(device: Any) -> float:
    """The time once the device has run everything queued so far."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
