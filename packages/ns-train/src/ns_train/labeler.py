"""`ns label`: the teacher, without noise, writes top-k pseudo labels for every unlabeled sample.

One labels file per source shard, renamed into place when complete: a rerun skips finished shards,
so a killed job loses at most the shards in flight. Under torchrun each rank labels its own shards.
The teacher's batches never cross a shard boundary, so a shard's bytes do not depend on which other
shards a job labels: resumed, distributed and uninterrupted jobs write identical files.

    summary = label(teacher, Path("shards/unlabeled"), Path("labels"), LabelConfig(topk=5))
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ns_data.atomic import write_json
from ns_data.job_lock import hold_output_lock
from ns_data.labels.store import (
    SUFFIX,
    TeacherInfo,
    labels_file,
    read_teacher,
    read_top1,
    write_shard_labels,
)
from ns_data.loading.config import LoaderConfig
from ns_data.loading.views import View
from ns_data.shards.manifest import Manifest
from ns_data.shards.reader import ShardSet
from ns_models import (
    SpeedConfig,
    apply_speed_knobs,
    autocast,
    load_checkpoint,
    prepare_images,
    student_mode,
    teacher_mode,
)
from ns_models.checkpoint import open_checkpoint
from ns_train.config import LabelConfig
from ns_train.errors import TrainError
from ns_train.plots import plot_pseudo_labels
from ns_train.progress import job_progress
from ns_train.runtime import Runtime, start, stop

SUMMARY_FILE = "summary.json"
PLOT_FILE = "pseudo_labels.png"

Predict = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


_LABEL_KEYWORDS = frozenset(f.name for f in dataclasses.fields(LabelConfig)) - {"loader"}
_LOADER_KEYWORDS = frozenset(f.name for f in dataclasses.fields(LoaderConfig))


def _with_old_keywords(config: LabelConfig | None, keywords: dict[str, Any]) -> LabelConfig:
    """`config` changed by the keyword arguments of ns 0.2's `label()` (`topk=`, `backend=`, ...),
    read for one version with a DeprecationWarning; without `config`, 0.2's defaults (a batch of
    128) are where they start."""
    if not keywords:
        return config if config is not None else LabelConfig()
    config = config if config is not None else LabelConfig(batch_size=128)
    unknown = sorted(set(keywords) - _LABEL_KEYWORDS - _LOADER_KEYWORDS)
    if unknown:
        raise TypeError(f"label() got unexpected keyword arguments {', '.join(unknown)}")
    warnings.warn(
        "label(..., topk=, backend=, ...) is now label(..., LabelConfig(...))",
        DeprecationWarning,
        stacklevel=3,
    )
    loader = {k: v for k, v in keywords.items() if k in _LOADER_KEYWORDS}
    changes = {k: v for k, v in keywords.items() if k in _LABEL_KEYWORDS}
    if loader:
        changes["loader"] = dataclasses.replace(config.loader, **loader)
    return dataclasses.replace(config, **changes)


@dataclass(frozen=True, slots=True)
class LabelSummary:
    """What a labeling job produced, over every shard of the set (all ranks, earlier runs too)."""

    samples: int
    shards_labeled: int
    shards_skipped: int
    unreadable: int
    """Samples the loader could not decode: stored with probability 0, so the plan drops them."""
    mean_confidence: float
    class_counts: list[int]
    images_per_second: float
    """Images labeled by this job (all ranks) per second of its labeling loop."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def checkpoint_id(checkpoint: Path) -> str:
    """SHA-256 of a checkpoint's weights and config: the teacher's identity in labels files."""
    digest = hashlib.sha256()
    for path in open_checkpoint(checkpoint).files:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def label(
    teacher: Path,
    shards: Path,
    out_dir: Path,
    config: LabelConfig | None = None,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    **old_keywords: Any,
) -> LabelSummary:
    """Label every sample of `shards` with the teacher checkpoint; write files under `out_dir`.

    Args:
        teacher: checkpoint folder; its weights (EMA when trained with EMA) run in eval mode on
            the eval view (resize + center crop) at the checkpoint's image size.
        shards: the unlabeled shard set.
        out_dir: one labels file per shard, `summary.json` and `pseudo_labels.png`.
        config: top-k, temperature, batch size, noise, device, precision and loader (None: the
            defaults).
        overwrite: delete labels already in `out_dir` instead of refusing another teacher's.
        show_progress: progress bar with images/s and ETA on rank 0.
        old_keywords: ns 0.2's keyword arguments (`topk=`, `backend=`, `workers=`, ...: the
            fields of `LabelConfig` and `LoaderConfig`), read for one version.
    """
    config = _with_old_keywords(config, old_keywords)
    topk, temperature, batch_size = config.topk, config.temperature, config.batch_size
    channels_last = config.channels_last
    with ExitStack() as stack:
        runtime = start(config.device)
        stack.callback(stop, runtime)
        model, meta = load_checkpoint(teacher)
        manifest = Manifest.load(shards)
        info = TeacherInfo(
            checkpoint=str(teacher),
            model_name=meta.model_name,
            class_names=meta.class_names,
            temperature=temperature,
            topk=min(topk, meta.num_classes),
            teacher_id=checkpoint_id(teacher),
        )
        out_dir = Path(out_dir)
        stack.enter_context(hold_output_lock(out_dir, holder=runtime.is_main))
        _prepare(out_dir, manifest, shards, info, overwrite, runtime)
        speed = SpeedConfig(channels_last=channels_last, bf16=config.bf16)
        model = apply_speed_knobs(model.to(runtime.device), speed)
        mine = range(runtime.rank, len(manifest.shards), runtime.world_size)
        todo = [i for i in mine if not labels_file(out_dir, manifest.shards[i].tar).exists()]
        started, labeled = time.perf_counter(), 0
        if todo:
            data = ShardSet(shards, shards=todo)
            loader = config.loader.build(
                data,
                View(image_size=meta.image_size, channels_last=channels_last),
                batch_size=batch_size,
                device=runtime.device,
            )

            @torch.inference_mode()
            def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                """Top-k classes and probabilities, left on the device (read once per shard)."""
                with autocast(speed, runtime.device):
                    logits = model(prepare_images(images, speed))
                probs = torch.softmax(logits.float() / temperature, dim=1)
                top = probs.topk(info.topk, dim=1)
                return top.indices.int(), top.values.half()

            writer = _ShardWriter(data, out_dir, info, predict, batch_size)
            with (
                job_progress(enabled=show_progress and runtime.is_main) as progress,
                (_noised_mode if config.noised else teacher_mode)(model),
            ):
                task = progress.add_task("label", total=len(data), info="")
                for batch in loader:
                    writer.add(batch.images, batch.sample_ids.numpy())
                    labeled += len(batch.images)
                    rate = labeled * runtime.world_size / (time.perf_counter() - started)
                    progress.update(task, advance=len(batch.images), info=f"{rate:.0f} img/s")
                writer.finish()
        counts = [labeled, len(todo), len(mine) - len(todo), time.perf_counter() - started]
        return _summary(out_dir, manifest, info, counts, runtime)


@contextmanager
def _noised_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Dropout and stochastic depth on, batch norm on its running statistics."""
    with student_mode(model):
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        yield model


def _prepare(
    out_dir: Path,
    manifest: Manifest,
    shards: Path,
    teacher: TeacherInfo,
    overwrite: bool,
    runtime: Runtime,
) -> None:
    """Refuse labels of another teacher or set (every rank checks); rank 0 clears what must go."""
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob(f"*{SUFFIX}"))
    if not overwrite:
        ours = {labels_file(out_dir, s.tar).name for s in manifest.shards}
        for path in existing:
            if path.name not in ours:
                raise TrainError(
                    f"{path} labels a shard that is not in {shards}: use another --out, "
                    "or --overwrite to start over"
                )
            found = read_teacher(path)
            if not found.same_labels_as(teacher):
                raise TrainError(
                    f"{path} was made by another teacher or settings ({found.checkpoint}, id "
                    f"{found.teacher_id}, T={found.temperature}, top-{found.topk}): "
                    "use another --out, or --overwrite to relabel"
                )
    if runtime.is_main:
        for path in out_dir.glob(f".*{SUFFIX}.tmp-*"):
            path.unlink(missing_ok=True)  # left by a killed job
        if overwrite:
            for path in existing:
                path.unlink()
    if runtime.distributed:
        dist.barrier()


class _ShardWriter:
    """Runs the teacher on batches within one shard; writes each shard's file once complete."""

    def __init__(
        self, data: ShardSet, out_dir: Path, teacher: TeacherInfo, predict: Predict, batch: int
    ) -> None:
        self.data, self.out_dir, self.teacher, self.predict = data, out_dir, teacher, predict
        self.batch = batch
        infos = [data.manifest.shards[n] for n in data.shard_numbers]
        self.first = np.array([s.first_id for s in infos], dtype=np.int64)
        self.count = np.array([s.count for s in infos], dtype=np.int64)
        self.by_first = np.argsort(self.first, kind="stable")
        self.current = 0
        self.images: list[torch.Tensor] = []
        self.ids: list[np.ndarray] = []
        self.outputs: list[tuple[np.ndarray, torch.Tensor, torch.Tensor]] = []

    def _shard_of(self, ids: np.ndarray) -> np.ndarray:
        """Position in this job's shards of each sample id."""
        sorted_first = self.first[self.by_first]
        return self.by_first[np.searchsorted(sorted_first, ids, side="right") - 1]

    def add(self, images: torch.Tensor, ids: np.ndarray) -> None:
        """Take one loader batch (in row order; unreadable samples already left out)."""
        shard = self._shard_of(ids)
        for position in np.unique(shard):
            while self.current < position:
                self._finish_shard()
            take = shard == position
            whole = bool(take.all())
            self.images.append(
                images if whole else images[torch.from_numpy(take).to(images.device)]
            )
            self.ids.append(ids if whole else ids[take])
            self._run(full_only=True)

    def finish(self) -> None:
        """Write the remaining shards (the loader is exhausted)."""
        while self.current < len(self.first):
            self._finish_shard()

    def _run(self, *, full_only: bool) -> None:
        """Predict the pending images in batches; with `full_only`, leave a partial batch."""
        if not self.ids:
            return
        pending = self.images[0] if len(self.images) == 1 else torch.cat(self.images)
        ids = self.ids[0] if len(self.ids) == 1 else np.concatenate(self.ids)
        start, least = 0, self.batch if full_only else 1
        while len(ids) - start >= least:
            end = min(start + self.batch, len(ids))
            classes, probs = self.predict(pending[start:end])
            self.outputs.append((ids[start:end], classes, probs))
            start = end
        self.images = [pending[start:]] if start < len(ids) else []
        self.ids = [ids[start:]] if start < len(ids) else []

    def _finish_shard(self) -> None:
        self._run(full_only=False)
        first, count = int(self.first[self.current]), int(self.count[self.current])
        k = self.teacher.topk
        classes = np.zeros((count, k), dtype=np.int32)
        probs = np.zeros((count, k), dtype=np.float16)  # unreadable samples stay at 0
        if self.outputs:  # one device-to-host copy per shard, not one wait per batch
            done = np.concatenate([ids for ids, _, _ in self.outputs]) - first
            classes[done] = torch.cat([c for _, c, _ in self.outputs]).cpu().numpy()
            probs[done] = torch.cat([p for _, _, p in self.outputs]).cpu().numpy()
        number = self.data.shard_numbers[self.current]
        path = labels_file(self.out_dir, self.data.manifest.shards[number].tar)
        ids = np.arange(first, first + count, dtype=np.int64)
        write_shard_labels(path, ids, classes, probs, self.teacher)
        self.outputs = []
        self.current += 1


def _summary(
    out_dir: Path, manifest: Manifest, teacher: TeacherInfo, counts: list[float], runtime: Runtime
) -> LabelSummary:
    """Totals over ranks; rank 0 reads every shard's top-1, writes the JSON and the plot."""
    sums = torch.tensor(counts[:3], dtype=torch.float64)
    seconds = torch.tensor(counts[3:], dtype=torch.float64)
    if runtime.distributed:
        dist.all_reduce(sums)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    labeled, shards_labeled, shards_skipped = sums.tolist()
    result: list[LabelSummary | None] = [None]
    if runtime.is_main:
        parts = [read_top1(labels_file(out_dir, s.tar)) for s in manifest.shards]
        top_class = np.concatenate([p[1] for p in parts])
        confidence = np.concatenate([p[2] for p in parts])
        readable = confidence > 0
        plot_pseudo_labels(
            confidence[readable], top_class[readable], teacher.class_names, out_dir / PLOT_FILE
        )
        summary = LabelSummary(
            samples=len(top_class),
            shards_labeled=int(shards_labeled),
            shards_skipped=int(shards_skipped),
            unreadable=int((~readable).sum()),
            mean_confidence=float(confidence[readable].astype(np.float64).mean())
            if readable.any()
            else 0.0,
            class_counts=np.bincount(
                top_class[readable], minlength=len(teacher.class_names)
            ).tolist(),
            images_per_second=labeled / max(float(seconds), 1e-9),
        )
        result[0] = summary
        write_json(out_dir / SUMMARY_FILE, {**summary.to_dict(), "teacher": asdict(teacher)})
    if runtime.distributed:
        dist.broadcast_object_list(result, src=0)
    assert result[0] is not None
    return result[0]
