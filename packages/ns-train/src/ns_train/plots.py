"""PNG plots people would rather look at than read (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ns_data.atomic import atomic_path
from ns_train.jsonl import read_jsonl


def save_figure(fig: Figure, out: Path, dpi: int = 110) -> None:
    """Write `fig` to `out` as a PNG, atomically: never half a PNG, and a full disk names `out`."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def plot_training(metrics_path: Path, out: Path) -> Path:
    """Loss per step and eval top-1 per epoch of one training job."""
    records = read_jsonl(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    left.set(xlabel="step", ylabel="training loss", title="loss")
    right.plot([r["epoch"] for r in evals], [100 * r["top1"] for r in evals], marker="o")
    right.set(xlabel="epoch", ylabel="top-1 (%)", title="eval accuracy (EMA weights)")
    fig.tight_layout()
    save_figure(fig, out)
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
    save_figure(fig, out)
    plt.close(fig)
    return out


CONFUSION_CLASSES = 100
"""Up to this many classes the confusion matrix is drawn with class names; beyond, as an image."""


def plot_confusion(confusion: np.ndarray, rows: list[str], columns: list[str], out: Path) -> Path:
    """Row-normalized confusion matrix (true class × predicted class)."""
    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    side = min(12.0, 3.0 + 0.12 * max(len(rows), len(columns)))
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    shown = ax.imshow(100 * share, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    fig.colorbar(shown, ax=ax, label="% of the true class")
    if max(len(rows), len(columns)) <= CONFUSION_CLASSES:
        size = 8 if len(columns) <= 20 else 5
        ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=size)
        ax.set_yticks(range(len(rows)), rows, fontsize=size)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return out


def plot_reliability(
    count: np.ndarray, confidence_sum: np.ndarray, correct: np.ndarray, out: Path
) -> Path:
    """Reliability diagram: accuracy against confidence per equal-width bin, and the bins' sizes."""
    bins = len(count)
    edges = np.linspace(0, 1, bins + 1)
    filled = count > 0
    accuracy = np.where(filled, correct / np.maximum(count, 1), 0)
    mean_confidence = np.where(filled, confidence_sum / np.maximum(count, 1), 0)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.bar(edges[:-1], accuracy, width=1 / bins, align="edge", edgecolor="black", label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.scatter(
        mean_confidence[filled], accuracy[filled], color="red", s=12, label="mean confidence"
    )
    top.set(ylabel="accuracy", title="reliability diagram", ylim=(0, 1))
    top.legend(fontsize=8)
    bottom.bar(edges[:-1], count, width=1 / bins, align="edge", edgecolor="black")
    bottom.set(xlabel="top-1 confidence", ylabel="images", xlim=(0, 1))
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return out


def plot_corruption_errors(errors: dict[str, dict[int, float]], out: Path) -> Path:
    """Top-1 error per corruption, one bar per severity (ImageNet-C style)."""
    corruptions = list(errors)
    severities = sorted({s for v in errors.values() for s in v})
    width = 0.8 / max(len(severities), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(corruptions) + 2), 3.8))
    for k, severity in enumerate(severities):
        heights = [100 * errors[c].get(severity, np.nan) for c in corruptions]
        ax.bar(
            np.arange(len(corruptions)) + k * width, heights, width, label=f"severity {severity}"
        )
    ax.set_xticks(
        np.arange(len(corruptions)) + 0.4 - width / 2, corruptions, rotation=45, ha="right"
    )
    ax.set(ylabel="top-1 error (%)", title="error per corruption")
    ax.legend(fontsize=7, ncol=min(len(severities), 5))
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return out
