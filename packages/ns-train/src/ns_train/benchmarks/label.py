"""`ns label` (the engine's `label()`) against a plain timm inference loop.

Same model (a randomly initialized 1000-class model: speed does not depend on the weights), same
shard set, batch, precision (float32 on the CPU, bf16 autocast on a GPU), channels-last and eval
mode. On the CPU `ns label --bf16` is timed too, against the same float32 plain loop: CPUs with
bf16 units (AMX, AVX512-BF16) label faster in bf16 with channels-last. The plain loop reads the
tars with webdataset, decodes with PIL, resizes and center-crops with torchvision v2 in a
DataLoader and keeps the top 10 under `torch.inference_mode`. Two rates: end to end (for `label()` this
includes loading and hashing the checkpoint and writing labels, summary and plot) and the
labeling loop alone (from the first batch's request to the last image).
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Candidate, Metrics, rows_of

PLAIN = "plain timm loop (webdataset + PIL + torchvision v2)"
CLASSES = 1000
UNITS = {"images/s": "images/s", "images/s, loop only": "images/s"}


def run(ctx: Context) -> Section:
    from ns_data.loading.loader import dali_available

    shards = ctx.shard_set()
    size, batch = ctx.sizes.label_size, ctx.sizes.label_batch
    checkpoint = random_checkpoint(ctx.work / "teacher", ctx.settings.model, size)
    backends = ["torch"] + (["dali-gpu" if ctx.cuda else "dali-cpu"] if dali_available() else [])
    candidates = [Candidate(PLAIN, lambda: _plain(shards, ctx, size, batch))]
    candidates += [
        Candidate(f"ns label, {b} loader", partial(_ns, checkpoint, shards, ctx, b, batch), PLAIN)
        for b in backends
    ]
    if not ctx.cuda:
        fastest = backends[-1]
        candidates.append(
            Candidate(
                f"ns label --bf16, {fastest} loader",
                partial(_ns, checkpoint, shards, ctx, fastest, batch, bf16=True),
                PLAIN,
            )
        )
    ctx.begin("label")
    runs = ctx.rounds(candidates)
    return Section(
        "label",
        "`ns label` vs a plain timm inference loop",
        {
            "data": ctx.data_name(),
            "model": ctx.settings.model,
            "image side": size,
            "batch": batch,
            "workers": ctx.workers,
            "device": ctx.device,
            "precision": ("bf16 autocast" if ctx.cuda else "float32") + ", channels-last",
        },
        rows_of(candidates, runs, UNITS),
    )


def random_checkpoint(directory: Path, model_name: str, size: int) -> Path:
    """A checkpoint of `model_name` with random weights, 1000 classes, for `size` px images."""
    from ns_models import CheckpointConfig, build_model, default_noise, save_checkpoint

    model = build_model(model_name, CLASSES, noise=default_noise(model_name))
    config = CheckpointConfig(
        model_name=model_name,
        num_classes=CLASSES,
        class_names=[f"c{i}" for i in range(CLASSES)],
        image_size=size,
        noise=default_noise(model_name),
    )
    return save_checkpoint(directory, model, config)


def _ns(
    checkpoint: Path, shards: Path, ctx: Context, backend: str, batch: int, bf16: bool = False
) -> Metrics:
    """`label()` into a fresh folder, its config built from `key=value` overrides as `ns run`'s
    `--set label.KEY=VALUE` builds it (the field names are the stable part)."""
    from ns_train.config import LabelConfig
    from ns_train.config_files import resolve
    from ns_train.labeler import label

    overrides = [
        f"batch_size={batch}",
        f"device={ctx.device!r}",
        f"bf16={str(ctx.cuda or bf16).lower()}",
        f"loader.backend={backend!r}",
        f"loader.workers={ctx.workers}",
    ]
    config = resolve(LabelConfig, LabelConfig(), None, overrides)
    out = Path(tempfile.mkdtemp(dir=ctx.work, prefix="labels-"))
    started = time.perf_counter()
    summary = label(checkpoint, shards, out, config, show_progress=False)
    seconds = time.perf_counter() - started
    return {
        "images/s": summary.samples / seconds,
        "images/s, loop only": summary.images_per_second,
    }


def _plain(shards: Path, ctx: Context, size: int, batch: int) -> Metrics:
    """The hand-written baseline: webdataset + PIL + torchvision, the timm model in eval mode."""
    import timm
    import torch
    import webdataset as wds
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    from ns_data.loading.views import IMAGENET_MEAN, IMAGENET_STD

    started = time.perf_counter()
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
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil")
    dataset = dataset.to_tuple("jpg").map_tuple(transform).batched(batch)
    loader = DataLoader(dataset, batch_size=None, num_workers=ctx.workers, pin_memory=ctx.cuda)
    device = torch.device(ctx.device)
    model = timm.create_model(ctx.settings.model, num_classes=CLASSES).eval()
    model = model.to(device).to(memory_format=torch.channels_last)
    done, loop_started = 0, time.perf_counter()
    with torch.inference_mode():
        for (images,) in loader:
            batch_in = images.to(device, non_blocking=True, memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=ctx.cuda):
                logits = model(batch_in)
            probs = torch.softmax(logits.float(), dim=1).topk(10, dim=1)
            done += len(probs.values.cpu())
    ended = time.perf_counter()
    return {
        "images/s": done / (ended - started),
        "images/s, loop only": done / (ended - loop_started),
    }
