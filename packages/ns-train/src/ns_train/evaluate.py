"""Top-1/top-5 accuracy of a model (or a checkpoint) on a labeled shard set, in teacher mode."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ns_data.loader import ImageLoader
from ns_data.shard_set import ShardSet
from ns_data.views import View
from ns_models import load_checkpoint, teacher_mode
from ns_train.errors import TrainError
from ns_train.runtime import Runtime, start


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Accuracy over `count` images; `per_class` holds the top-1 of each class."""

    top1: float
    top5: float
    loss: float
    count: int
    per_class: list[float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module, loader: ImageLoader, runtime: Runtime, num_classes: int
) -> EvalResult:
    """Run `model` without noise over one epoch of `loader`; sums are reduced across ranks."""
    correct1 = torch.zeros((), dtype=torch.float64, device=runtime.device)
    correct5 = torch.zeros_like(correct1)
    loss_sum = torch.zeros_like(correct1)
    hits = torch.zeros(num_classes, dtype=torch.float64, device=runtime.device)
    seen = torch.zeros_like(hits)
    with teacher_mode(model):
        for batch in loader:
            logits = model(batch.images).float()
            loss_sum += F.cross_entropy(logits, batch.labels, reduction="sum")
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            match = top == batch.labels[:, None]
            correct1 += match[:, 0].sum()
            correct5 += match.any(dim=1).sum()
            hits.index_add_(0, batch.labels, match[:, 0].double())
            seen.index_add_(0, batch.labels, torch.ones_like(hits[batch.labels]))
    totals = torch.stack([correct1, correct5, loss_sum, seen.sum()])
    if runtime.distributed:
        for tensor in (totals, hits, seen):
            dist.all_reduce(tensor)
    count = int(totals[3].item())
    if count == 0:
        raise TrainError("the eval set yielded no images")
    return EvalResult(
        top1=float(totals[0] / count),
        top5=float(totals[1] / count),
        loss=float(totals[2] / count),
        count=count,
        per_class=(hits / seen.clamp_min(1)).tolist(),
    )


def evaluate(
    checkpoint: Path,
    shards: Path,
    *,
    batch_size: int = 128,
    backend: str = "auto",
    device: str = "auto",
    workers: int | None = None,
) -> EvalResult:
    """Load a checkpoint and evaluate it on a labeled shard set at the checkpoint's image size."""
    runtime = start(device)
    model, meta = load_checkpoint(checkpoint)
    data = ShardSet.for_rank(shards, runtime.rank, runtime.world_size)
    data.require_labels()
    if data.manifest.classes != meta.class_names:
        raise TrainError(
            f"{shards} has classes {data.manifest.classes[:5]}… but {checkpoint} was trained on "
            f"{meta.class_names[:5]}…; evaluate on a set sharded with the same classes"
        )
    model.to(runtime.device, memory_format=torch.channels_last)
    loader = ImageLoader(
        data,
        View(image_size=meta.image_size, channels_last=True),
        batch_size=batch_size,
        rank=runtime.rank,
        world_size=runtime.world_size,
        backend=backend,  # type: ignore[arg-type]
        device=runtime.device,
        workers=workers,
    )
    return evaluate_model(model, loader, runtime, meta.num_classes)
