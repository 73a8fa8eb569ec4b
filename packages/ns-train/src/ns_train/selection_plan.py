"""Filter and balance pseudo labels into the student's selection plan (`ns select`).

    summary = make_plan(run / "labels", shards / "train", shards / "unlabeled", run / "plan")

The plan is `plan.npy`: one copy count per row of the unlabeled shard set, in its row order
(0 = dropped, 2 = read twice per epoch), which `ns train --plan` hands to the student's loader.
Beside it `selection.json` (per class: kept, dropped, duplicated) and `selection.png`.

Per-class targets default to the labeled set's class distribution scaled to the unlabeled count
(`proportional_targets`); the paper used a uniform 130K images per class on ImageNet (its labeled
set is nearly uniform, so the two agree there) with a confidence threshold of 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ns_data.atomic import atomic_path, write_json
from ns_data.labels.selection import (
    DEFAULT_THRESHOLD,
    SelectionSummary,
    proportional_targets,
    select,
    summarize,
)
from ns_data.labels.store import labels_file, read_teacher, read_top1
from ns_data.shards.manifest import Manifest
from ns_train.errors import TrainError
from ns_train.plots import save_figure

PLAN_FILE = "plan.npy"
SUMMARY_FILE = "selection.json"
PLOT_FILE = "selection.png"


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """Where the plan went, the per-class targets and what the plan keeps and drops per class."""

    plan: Path
    class_names: list[str]
    targets: np.ndarray
    selection: SelectionSummary

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: totals, then per class its target, kept, dropped and duplicated counts."""
        s = self.selection
        return {
            "plan": str(self.plan),
            "threshold": s.threshold,
            "totals": s.totals,
            "per_class": {
                "class": self.class_names,
                "target": self.targets.tolist(),
                "kept": s.kept.tolist(),
                "duplicated": s.duplicates.tolist(),
                "dropped_under_threshold": s.below.tolist(),
                "dropped_over_target": s.dropped.tolist(),
                "copies": s.copies.tolist(),
            },
        }


def make_plan(
    labels_dir: Path,
    labeled_set: Path,
    unlabeled_set: Path,
    out_dir: Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    per_class: int | np.ndarray | None = None,
) -> PlanSummary:
    """Write `plan.npy`, `selection.json` and `selection.png` under `out_dir`.

    Args:
        labels_dir: pseudo labels of `unlabeled_set` (`ns label`).
        labeled_set: the labeled shard set; its class counts set the default targets.
        unlabeled_set: the shard set the plan is for (one copy count per row).
        out_dir: where the three files go.
        threshold: samples whose top-1 probability is under it are dropped (paper: 0.3).
        per_class: copies per class (one int, or one per class); None: proportional to the
            labeled set's class counts, summing to the number of unlabeled samples.
    """
    labeled = Manifest.load(labeled_set)
    if not labeled.labeled or sum(labeled.class_counts) == 0:
        raise TrainError(f"{labeled_set} has no labels; pass the labeled set as --labeled")
    unlabeled = Manifest.load(unlabeled_set)
    if unlabeled.num_samples == 0:
        raise TrainError(f"{unlabeled_set} holds no samples; shard the unlabeled images first")
    top_class, confidence = _aligned_top1(Path(labels_dir), unlabeled, Path(unlabeled_set))
    teacher = read_teacher(labels_file(labels_dir, unlabeled.shards[0].tar))
    if teacher.class_names != labeled.classes:
        raise TrainError(
            f"the pseudo labels in {labels_dir} use classes {teacher.class_names[:5]}…, "
            f"{labeled_set} has {labeled.classes[:5]}…; label with a teacher of these classes"
        )
    num_classes = len(labeled.classes)
    targets = (
        proportional_targets(np.asarray(labeled.class_counts), unlabeled.num_samples)
        if per_class is None
        else np.broadcast_to(np.asarray(per_class, dtype=np.int64), (num_classes,)).copy()
    )
    copies = select(
        top_class, confidence, num_classes=num_classes, threshold=threshold, per_class=targets
    )
    summary = PlanSummary(
        plan=Path(out_dir) / PLAN_FILE,
        class_names=labeled.classes,
        targets=targets,
        selection=summarize(top_class, confidence, copies, num_classes, threshold),
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(summary.plan) as tmp, open(tmp, "wb") as file:
        np.save(file, copies, allow_pickle=False)
    write_json(Path(out_dir) / SUMMARY_FILE, summary.to_dict())
    plot_selection(summary, Path(out_dir) / PLOT_FILE)
    return summary


def _aligned_top1(
    labels_dir: Path, unlabeled: Manifest, unlabeled_set: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 class and probability per row of the unlabeled set; TrainError on any gap."""
    classes, probs = [], []
    for shard in unlabeled.shards:
        path = labels_file(labels_dir, shard.tar)
        if not path.is_file():
            raise TrainError(
                f"{labels_dir} has no pseudo labels for shard {shard.tar} of {unlabeled_set}: "
                f"run `ns label --data {unlabeled_set} --out {labels_dir}` (they may be for "
                "another set, or unfinished)"
            )
        ids, top_class, top_prob = read_top1(path)
        expected = np.arange(shard.first_id, shard.first_id + shard.count)
        if not np.array_equal(ids, expected):
            raise TrainError(
                f"{path} labels {len(ids)} samples, not the {shard.count} of {shard.tar} in "
                f"{unlabeled_set} (ids from {shard.first_id}): relabel with `ns label "
                f"--data {unlabeled_set} --out {labels_dir} --overwrite`"
            )
        classes.append(top_class)
        probs.append(top_prob)
    return np.concatenate(classes), np.concatenate(probs)


def plot_selection(summary: PlanSummary, out: Path) -> Path:
    """Stacked bars per class: kept once, extra copies, dropped over target, under threshold."""
    s = summary.selection
    x = np.arange(len(summary.class_names))
    fig = Figure(figsize=(max(6.0, 0.25 * len(x)), 3.8))
    ax = fig.subplots()
    bottom = np.zeros(len(x))
    for values, name in (
        (s.kept, "kept"),
        (s.duplicates, "duplicate copies"),
        (s.dropped, "dropped (over target)"),
        (s.below, f"dropped (under {s.threshold:g})"),
    ):
        ax.bar(x, values, bottom=bottom, label=name, width=0.8)
        bottom += values
    ax.step(x, summary.targets, where="mid", color="black", lw=1, label="target")
    if len(x) <= 30:
        ax.set_xticks(x, summary.class_names, rotation=90 if len(x) > 12 else 0)
    ax.set(xlabel="class", ylabel="images", title="selection plan per class")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    return out
