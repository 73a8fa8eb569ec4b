"""`ns eval`: a checkpoint's evaluation report on a shard set or an image folder.

    report = evaluate_checkpoint(Path("runs/student/checkpoint"), Path("photos/val"))
    write_eval_report(report, Path("runs/student/eval"))

Classes are matched by name between the checkpoint and the data, so a folder may hold any subset
of the checkpoint's classes in any order. A folder of class folders is sharded first (headers
checked only, into a work folder) and read like any shard set. The model runs in teacher mode
(its EMA weights when it kept them, no noise, center crop at its resolution).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ns_data.atomic import atomic_path, write_json
from ns_data.ingest.pipeline import ShardConfig, shard_images
from ns_data.loading.config import LoaderConfig
from ns_data.loading.views import View
from ns_data.shards.manifest import MANIFEST_NAME
from ns_data.shards.reader import ShardSet
from ns_models import CheckpointConfig, load_checkpoint
from ns_train.config import loader_with_old_keywords
from ns_train.errors import TrainError
from ns_train.evaluation.predictions import PredictionSums, prediction_sums, result_of
from ns_train.evaluation.robustness_metrics import calibration_error_from_bins
from ns_train.plots import plot_confusion, plot_reliability
from ns_train.runtime import Runtime, start

EVAL_JSON = "eval.json"
EVAL_MD = "eval.md"
CONFUSION_PLOT = "confusion.png"
RELIABILITY_PLOT = "reliability.png"
CONFUSION_FILE = "confusion.npy"
TOP_CONFUSIONS = 20


@dataclass(frozen=True, slots=True)
class EvalReport:
    """One checkpoint on one labeled set: accuracy, likelihood, calibration, per class."""

    checkpoint: str
    data: str
    model: str
    class_names: list[str]
    """The data's classes (rows of the confusion matrix)."""
    column_names: list[str]
    """The predicted classes: the checkpoint's, or the data's when predictions are restricted."""
    restricted: bool
    sums: PredictionSums

    @property
    def count(self) -> int:
        return self.sums.count

    @property
    def top1(self) -> float:
        return result_of(self.sums).top1

    @property
    def top5(self) -> float:
        return result_of(self.sums).top5

    @property
    def nll(self) -> float:
        return self.sums.nll_sum / self.count

    @property
    def ece(self) -> float:
        s = self.sums
        return calibration_error_from_bins(s.bin_count, s.bin_confidence, s.bin_correct)

    @property
    def per_class(self) -> dict[str, float]:
        return dict(zip(self.class_names, result_of(self.sums).per_class, strict=True))

    def top_confusions(self, limit: int = TOP_CONFUSIONS) -> list[tuple[str, str, int]]:
        """The most frequent (true class, predicted class, images) mistakes."""
        mistakes = self.sums.confusion.copy()
        mistakes[np.arange(len(self.class_names)), self.sums.target_column] = 0
        order = np.argsort(mistakes, axis=None, kind="stable")[::-1][:limit]
        rows, cols = np.unravel_index(order, mistakes.shape)
        return [
            (self.class_names[r], self.column_names[c], int(mistakes[r, c]))
            for r, c in zip(rows, cols, strict=True)
            if mistakes[r, c] > 0
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "model": self.model,
            "count": self.count,
            "top1": self.top1,
            "top5": self.top5,
            "nll": self.nll,
            "ece": self.ece,
            "restricted_to_data_classes": self.restricted,
            "per_class": self.per_class,
            "top_confusions": [list(t) for t in self.top_confusions()],
            "calibration_bins": {
                "count": self.sums.bin_count.tolist(),
                "confidence_sum": self.sums.bin_confidence.tolist(),
                "correct": self.sums.bin_correct.tolist(),
            },
        }

    def summary_line(self) -> str:
        return (
            f"top-1 {100 * self.top1:.2f}%  top-5 {100 * self.top5:.2f}%  NLL {self.nll:.3f}  "
            f"ECE {100 * self.ece:.2f}%  ({self.count} images)"
        )


def match_classes(
    model_classes: Sequence[str], data_classes: Sequence[str], data: Path
) -> np.ndarray:
    """The checkpoint's index of each of the data's classes, matched by name."""
    if not model_classes:  # a checkpoint without class names: the data must use its indices
        if len(data_classes) > 0 and all(c.isdigit() for c in data_classes):
            return np.asarray([int(c) for c in data_classes], dtype=np.int64)
        raise TrainError(
            f"the checkpoint has no class names, so {data}'s classes cannot be matched; "
            "evaluate on a set whose classes are named 0, 1, ... like the checkpoint's indices"
        )
    index = {name: i for i, name in enumerate(model_classes)}
    missing = [name for name in data_classes if name not in index]
    if missing:
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise TrainError(
            f"{data} has {len(missing)} classes the checkpoint does not know ({shown}); "
            f"it knows {len(model_classes)} classes such as {', '.join(model_classes[:3])}: "
            "evaluate on folders named like the checkpoint's classes"
        )
    return np.asarray([index[name] for name in data_classes], dtype=np.int64)


@contextmanager
def labeled_shards(
    data: Path, runtime: Runtime, *, limit_per_class: int | None = None
) -> Iterator[Path]:
    """A shard set holding `data`: the set itself, or a folder of class folders sharded into a
    temporary folder (rank 0 shards, every rank reads) that is removed afterwards."""
    data = Path(data)
    if (data / MANIFEST_NAME).is_file():
        if limit_per_class is not None:
            raise TrainError(
                f"--limit-per-class applies to image folders, and {data} is a shard set: "
                "evaluate the whole set, or point at the image folder it came from"
            )
        yield data
        return
    if not data.is_dir():
        raise TrainError(f"{data} is neither a shard set nor a folder of class folders")
    with _shared_temporary(data, runtime) as work:
        if runtime.is_main:
            _shard_folder(data, work, limit_per_class)
        if runtime.distributed:
            dist.barrier()
        yield work / "shards"


@contextmanager
def _shared_temporary(data: Path, runtime: Runtime) -> Iterator[Path]:
    """A work folder every rank agrees on (named from the data's path and the run), removed
    at the end; `NS_EVAL_WORK` chooses where (default: the system's temporary folder)."""
    digest = hashlib.sha256(str(data.absolute()).encode()).hexdigest()[:16]
    base = Path(os.environ.get("NS_EVAL_WORK", tempfile.gettempdir()))
    work = base / f"ns-eval-{digest}-{os.environ.get('TORCHELASTIC_RUN_ID', os.getpid())}"
    try:
        yield work
    finally:
        if runtime.distributed:
            dist.barrier()
        if runtime.is_main:
            shutil.rmtree(work, ignore_errors=True)


def _shard_folder(data: Path, work: Path, limit_per_class: int | None) -> None:
    """Shard `data` (class folders) into `work/shards`, headers checked only (fast)."""
    classes = sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TrainError(
            f"{data} holds no class folders: expected {data}/CLASS/IMAGE files "
            "(or a shard set made by `ns shard`)"
        )
    source, config = data, ShardConfig(kind="imagefolder", verify="structure", overwrite=True)
    if limit_per_class is not None:
        source = _limited_list(data, classes, limit_per_class, work)
        config = ShardConfig(
            kind="list", classes_file=work / "classes.txt", verify="structure", overwrite=True
        )
    shard_images(source, work / "shards", config)


def _limited_list(data: Path, classes: list[str], limit: int, work: Path) -> Path:
    """`work/list.jsonl`: the first `limit` images (sorted) of each class; `work/classes.txt`."""
    if limit < 1:
        raise TrainError(f"--limit-per-class must be positive, got {limit}")
    rows = []
    for name in classes:
        images = sorted(
            p for p in (data / name).rglob("*") if p.is_file() and not p.name.startswith(".")
        )
        rows += [{"path": str(p.absolute()), "label": name} for p in images[:limit]]
    work.mkdir(parents=True, exist_ok=True)
    (work / "classes.txt").write_text("".join(c + "\n" for c in classes))
    listing = work / "list.jsonl"
    listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return listing


@dataclass(frozen=True, slots=True)
class LoadedCheckpoint:
    """A checkpoint ready to evaluate on the runtime's device."""

    path: Path
    model: torch.nn.Module
    meta: CheckpointConfig


def load_for_eval(checkpoint: Path, runtime: Runtime) -> LoadedCheckpoint:
    model, meta = load_checkpoint(checkpoint)
    model.to(runtime.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack (device, memory_format=)
    return LoadedCheckpoint(Path(checkpoint), model, meta)


def evaluate_loaded(
    loaded: LoadedCheckpoint,
    shards: Path,
    runtime: Runtime,
    *,
    restrict: bool = False,
    batch_size: int = 128,
    loader: LoaderConfig | None = None,
    shown_as: Path | None = None,
    **old_keywords: Any,
) -> EvalReport:
    """Evaluate an already loaded checkpoint on a labeled shard set (see `evaluate_checkpoint`)."""
    loader = loader_with_old_keywords(loader, old_keywords, "evaluate_loaded")
    data = ShardSet.for_rank(shards, runtime.rank, runtime.world_size)
    data.require_labels()
    shown = shown_as or shards
    classes = list(data.manifest.classes or [])
    model_classes = loaded.meta.class_names
    in_model = match_classes(model_classes, classes, shown)
    names = model_classes or [str(i) for i in range(loaded.meta.num_classes)]
    images = loader.build(
        data,
        View(image_size=loaded.meta.image_size, channels_last=True),
        batch_size=batch_size,
        rank=runtime.rank,
        world_size=runtime.world_size,
        device=runtime.device,
    )
    if restrict:
        sums = prediction_sums(
            loaded.model, images, runtime, np.arange(len(classes)), len(classes), in_model
        )
        columns = classes
    else:
        sums = prediction_sums(loaded.model, images, runtime, in_model, loaded.meta.num_classes)
        columns = names
    if sums.count == 0:
        raise TrainError(f"{shown} yielded no readable images")
    return EvalReport(
        checkpoint=str(loaded.path),
        data=str(shown),
        model=loaded.meta.model_name,
        class_names=classes,
        column_names=list(columns),
        restricted=restrict,
        sums=sums,
    )


def evaluate_checkpoint(
    checkpoint: Path,
    data: Path,
    *,
    restrict: bool = False,
    batch_size: int = 128,
    loader: LoaderConfig | None = None,
    device: str = "auto",
    limit_per_class: int | None = None,
    **old_keywords: Any,
) -> EvalReport:
    """Evaluate `checkpoint` on `data` (a labeled shard set or a folder of class folders).

    `restrict` limits predictions to the classes present in the data (ImageNet-A's protocol);
    otherwise a prediction of any of the checkpoint's classes counts. Under torchrun the images
    are split over ranks and the sums reduced. `loader`: backend and workers (None: the defaults;
    ns 0.2's `backend=` and `workers=` are still read, for one version).
    """
    loader = loader_with_old_keywords(loader, old_keywords, "evaluate_checkpoint")
    runtime = start(device)
    loaded = load_for_eval(checkpoint, runtime)
    with labeled_shards(data, runtime, limit_per_class=limit_per_class) as shards:
        return evaluate_loaded(
            loaded,
            shards,
            runtime,
            restrict=restrict,
            batch_size=batch_size,
            loader=loader,
            shown_as=Path(data),
        )


def write_eval_report(report: EvalReport, out: Path) -> list[Path]:
    """`eval.json`, `eval.md`, `confusion.npy` and the confusion and reliability plots in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / EVAL_JSON, report.to_dict())
    with atomic_path(out / CONFUSION_FILE) as tmp, open(tmp, "wb") as handle:
        np.save(handle, report.sums.confusion)
    with atomic_path(out / EVAL_MD) as tmp:
        tmp.write_text(eval_markdown(report))
    plot_confusion(
        report.sums.confusion, report.class_names, report.column_names, out / CONFUSION_PLOT
    )
    s = report.sums
    plot_reliability(s.bin_count, s.bin_confidence, s.bin_correct, out / RELIABILITY_PLOT)
    return [
        out / name
        for name in (EVAL_JSON, EVAL_MD, CONFUSION_FILE, CONFUSION_PLOT, RELIABILITY_PLOT)
    ]


def eval_markdown(report: EvalReport) -> str:
    """The report as Markdown: the headline numbers, per-class accuracy, top confusions."""
    lines = [
        f"# Evaluation of {report.checkpoint}",
        "",
        f"{report.model} on {report.data}: {report.count} images, {len(report.class_names)} "
        f"classes{' (predictions restricted to them)' if report.restricted else ''}.",
        "",
        "| top-1 | top-5 | NLL | ECE (15 bins) |",
        "| ---: | ---: | ---: | ---: |",
        f"| {100 * report.top1:.2f}% | {100 * report.top5:.2f}% | {report.nll:.4f} | "
        f"{100 * report.ece:.2f}% |",
        "",
        f"![confusion]({CONFUSION_PLOT}) ![reliability]({RELIABILITY_PLOT})",
        "",
        "## Per class",
        "",
        "| class | images | top-1 |",
        "| --- | ---: | ---: |",
    ]
    seen = report.sums.confusion.sum(axis=1)
    for (name, accuracy), images in zip(report.per_class.items(), seen, strict=True):
        lines.append(f"| {name} | {images} | {100 * accuracy:.1f}% |")
    confusions = report.top_confusions()
    if confusions:
        lines += ["", "## Most frequent confusions", "", "| true | predicted | images |"]
        lines += ["| --- | --- | ---: |"]
        lines += [f"| {t} | {p} | {n} |" for t, p, n in confusions]
    return "\n".join(lines) + "\n"
