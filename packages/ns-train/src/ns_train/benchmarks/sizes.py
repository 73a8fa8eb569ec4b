"""Bytes per sample of every artifact a run keeps, measured on the shard set, and their totals at
the paper's 300M images: what a run at scale needs on disk and in each rank's memory.

Measured, not timed (one value per row, no baseline): the shard set's tars (the encoded images
and what the tar format adds: headers, padding, the label member), DALI's index files, the
manifest and label column; pseudo labels as `ns label` writes them (top-10: the sample's id, its
classes and float16 probabilities, synthetic values: the size does not depend on them); the
selection plan (`make_plan` on those labels, where the set has labels to set its targets); the
loader's sample table in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Row
from ns_train.benchmarks.settings import PAPER_UNLABELED
from ns_train.config import LabelConfig

if TYPE_CHECKING:
    from ns_data.shards.manifest import Manifest

TOPK = LabelConfig().topk
"""What `ns label` keeps by default."""
UNIT = "B"


def run(ctx: Context) -> Section:
    from ns_data.shards.reader import ShardSet

    shards = ctx.shard_set()
    ctx.begin("sizes")
    ctx.expect(1)
    ctx.tick("measuring")
    opened = ShardSet(shards)
    count = len(opened)
    table = opened.table
    tars = _bytes(shards.glob("*.tar"))
    images = int(table.image_size.sum())
    manifest = opened.manifest
    labels = _write_labels(manifest, ctx.work / "labels")
    measured = {
        "encoded images (in the tars)": images,
        "tar format (headers, padding, label members)": tars - images,
        "DALI index files": _bytes(shards.glob("*.idx")),
        "manifest and label column": _bytes(
            p for p in shards.iterdir() if p.suffix in (".json", ".npy")
        ),
        f"pseudo labels, top-{TOPK}": _bytes(labels.iterdir()),
        "selection plan (plan.npy)": _plan_bytes(shards, labels, ctx.work),
        "loader sample table, in memory": sum(
            getattr(table, field.name).nbytes for field in dataclasses.fields(table)
        ),
    }
    notes = (
        []
        if measured["selection plan (plan.npy)"] is not None
        else ["selection plan: not measured (the set has no labels to set the plan's targets)"]
    )
    sizes = {name: total for name, total in measured.items() if total is not None}
    rows = [
        Row(f"{name}, per sample", "bytes", UNIT, [total / count]) for name, total in sizes.items()
    ]
    notes.append(
        f"at {PAPER_UNLABELED:,} samples: "
        + "; ".join(
            f"{name} {_human(total / count * PAPER_UNLABELED)}" for name, total in sizes.items()
        )
    )
    return Section(
        "sizes",
        "bytes per sample of each artifact, and their totals at 300M samples",
        {"data": ctx.data_name(), "samples": count, "shards": len(manifest.shards)},
        rows,
        notes,
    )


def _bytes(paths: Iterable[Path]) -> int:
    return sum(path.stat().st_size for path in paths)


def _write_labels(manifest: Manifest, out: Path) -> Path:
    """One labels file per shard, as `ns label` writes them, with synthetic top-k values (the
    size depends only on k: ids int64, classes int32, probabilities float16)."""
    from ns_data.labels.store import TeacherInfo, labels_file, write_shard_labels

    classes = manifest.classes or [f"class{c}" for c in range(TOPK)]
    teacher = TeacherInfo(checkpoint="synthetic", model_name="synthetic", class_names=classes)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for shard in manifest.shards:
        ids = np.arange(shard.first_id, shard.first_id + shard.count, dtype=np.int64)
        top = rng.integers(0, len(classes), (shard.count, TOPK), dtype=np.int32)
        probs = rng.dirichlet(np.ones(TOPK), shard.count).astype(np.float16)
        write_shard_labels(labels_file(out, shard.tar), ids, top, probs, teacher)
    return out


def _plan_bytes(shards: Path, labels: Path, work: Path) -> int | None:
    """The size of `make_plan`'s plan.npy for the set (None where the set has no labels: the
    plan's targets come from a labeled set)."""
    from ns_train.errors import TrainError
    from ns_train.selection_plan import make_plan

    try:
        summary = make_plan(labels, shards, shards, work / "plan")
    except TrainError:
        return None
    return summary.plan.stat().st_size


def _human(size: float) -> str:
    """Bytes in the largest unit that keeps the number at least 1 (decimal units, as disks)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size:,.0f} B"
