"""`ns label`: the teacher, without noise, writes top-k pseudo labels for every unlabeled sample.

One labels file per source shard, renamed into place when complete: a rerun skips finished shards,
so a killed job loses at most the shards in flight. Under torchrun each rank labels its own shards.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from ns_data.atomic import write_json
from ns_data.loader import ImageLoader
from ns_data.manifest import Manifest
from ns_data.pseudo_labels import PseudoLabels, TeacherInfo, labels_file, write_shard_labels
from ns_data.shard_set import ShardSet
from ns_data.views import View
from ns_models import load_checkpoint, teacher_mode

from ns_train.errors import TrainError
from ns_train.plots import plot_pseudo_labels
from ns_train.progress import job_progress
from ns_train.runtime import start, stop


@dataclass(frozen=True, slots=True)
class LabelSummary:
    """What a labeling job produced (over all ranks' files present at the end)."""

    samples: int
    shards_labeled: int
    shards_skipped: int
    mean_confidence: float
    class_counts: list[int]
    images_per_second: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def label(
    teacher: Path,
    shards: Path,
    out_dir: Path,
    *,
    topk: int = 10,
    temperature: float = 1.0,
    batch_size: int = 128,
    backend: str = "auto",
    device: str = "auto",
    workers: int | None = None,
    show_progress: bool = True,
) -> LabelSummary:
    """Label every sample of `shards` with the teacher checkpoint; write files under `out_dir`."""
    if temperature <= 0:
        raise TrainError(f"--temperature must be positive, got {temperature}")
    runtime = start(device)
    try:
        model, meta = load_checkpoint(teacher)
        k = min(topk, meta.num_classes)
        model.to(runtime.device, memory_format=torch.channels_last)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        info = TeacherInfo(str(teacher), meta.model_name, meta.class_names, temperature)
        manifest = Manifest.load(shards)
        mine = range(runtime.rank, len(manifest.shards), runtime.world_size)
        todo = [i for i in mine if not labels_file(out_dir, manifest.shards[i].tar).exists()]
        started, labeled = time.perf_counter(), 0
        if todo:
            data = ShardSet(shards, shards=todo)
            loader = ImageLoader(
                data,
                View(image_size=meta.image_size, channels_last=True),
                batch_size=batch_size,
                backend=backend,  # type: ignore[arg-type]
                device=runtime.device,
                workers=workers,
            )
            pending = _ShardBuffers(data, out_dir, info)
            with job_progress(enabled=show_progress and runtime.is_main) as progress:
                task = progress.add_task("label", total=len(data), info="")
                with teacher_mode(model), torch.inference_mode():
                    for batch in loader:
                        probs = torch.softmax(model(batch.images).float() / temperature, dim=1)
                        top = probs.topk(k, dim=1)
                        pending.add(batch.sample_ids.cpu().numpy(), top.indices.cpu().numpy(), top.values.cpu().numpy())
                        labeled += len(batch.images)
                        rate = labeled / (time.perf_counter() - started)
                        progress.update(task, advance=len(batch.images), info=f"{rate:.0f} img/s")
        rate = labeled / max(time.perf_counter() - started, 1e-9)
        if runtime.distributed:
            torch.distributed.barrier()
        summary = summarize(out_dir, len(todo), len(mine) - len(todo), rate)
        if runtime.is_main:
            write_json(out_dir / "summary.json", summary.to_dict())
        return summary
    finally:
        stop(runtime)


class _ShardBuffers:
    """Collects outputs in shard order and writes each shard's file as soon as it is complete."""

    def __init__(self, data: ShardSet, out_dir: Path, teacher: TeacherInfo) -> None:
        self.data, self.out_dir, self.teacher = data, out_dir, teacher
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.filled = 0
        self.shard_rows = [int((data.table.shard == s).sum()) for s in data.shard_numbers]
        self.current = 0

    def add(self, ids: np.ndarray, classes: np.ndarray, probs: np.ndarray) -> None:
        self.parts.append((ids, classes, probs))
        self.filled += len(ids)
        while self.current < len(self.shard_rows) and self.filled >= self.shard_rows[self.current]:
            self._flush(self.shard_rows[self.current])

    def _flush(self, count: int) -> None:
        ids, classes, probs = (np.concatenate(column) for column in zip(*self.parts, strict=True))
        number = self.data.shard_numbers[self.current]
        path = labels_file(self.out_dir, self.data.manifest.shards[number].tar)
        write_shard_labels(path, ids[:count], classes[:count], probs[:count].astype(np.float16), self.teacher)
        self.parts = [(ids[count:], classes[count:], probs[count:])]
        self.filled -= count
        self.current += 1


def summarize(out_dir: Path, labeled_now: int, skipped: int, rate: float) -> LabelSummary:
    """Read back every labels file of `out_dir`; plot confidence and class histograms."""
    store = PseudoLabels(out_dir)
    top_class, confidence = store.top1()
    plot_pseudo_labels(confidence, top_class, store.teacher.class_names, out_dir / "pseudo_labels.png")
    return LabelSummary(
        samples=len(store),
        shards_labeled=labeled_now,
        shards_skipped=skipped,
        mean_confidence=float(confidence.astype(np.float32).mean()),
        class_counts=np.bincount(top_class, minlength=store.num_classes).tolist(),
        images_per_second=rate,
    )
