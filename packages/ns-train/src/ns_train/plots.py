"""PNG plots people would rather look at than read (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ns_train.metrics import read_metrics


def plot_training(metrics_path: Path, out: Path) -> Path:
    """Loss per step and eval top-1 per epoch of one training job."""
    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    left.set(xlabel="step", ylabel="training loss", title="loss")
    right.plot([r["epoch"] for r in evals], [100 * r["top1"] for r in evals], marker="o")
    right.set(xlabel="epoch", ylabel="top-1 (%)", title="eval accuracy (EMA weights)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_pseudo_labels(
    confidence: np.ndarray, top_class: np.ndarray, class_names: list[str], out: Path
) -> Path:
    """Histogram of the teacher's top-1 confidence and of pseudo-label classes."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.hist(confidence.astype(np.float32), bins=40, range=(0, 1))
    left.set(xlabel="top-1 probability", ylabel="images", title="teacher confidence")
    counts = np.bincount(top_class, minlength=len(class_names))
    right.bar(range(len(counts)), counts)
    if len(class_names) <= 30:
        right.set_xticks(
            range(len(counts)), class_names, rotation=90 if len(class_names) > 12 else 0
        )
    right.set(xlabel="class", ylabel="images", title="pseudo-label classes")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
