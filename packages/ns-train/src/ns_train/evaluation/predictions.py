"""A model's predictions over a labeled shard set, in teacher mode, summed into metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ns_data.loading.loader import ImageLoader
from ns_models import teacher_mode
from ns_train.errors import TrainError
from ns_train.runtime import Runtime


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


CALIBRATION_BINS = 15
"""Equal-width confidence bins of the calibration error and the reliability diagram."""


@dataclass(frozen=True, slots=True)
class PredictionSums:
    """Everything the metrics need, as sums over images (so ranks add them up in one reduce).

    Rows are the data's classes, columns the predicted classes (the model's, or the subset the
    predictions were restricted to); `target_column[j]` is the column of data class j.
    """

    confusion: np.ndarray  # [data classes, columns] int64 image counts
    top5_hits: np.ndarray  # [data classes] images whose class is among the top 5
    target_column: np.ndarray  # [data classes] int64
    nll_sum: float  # sum over images of -log p(true class)
    bin_count: np.ndarray  # [CALIBRATION_BINS] images per confidence bin
    bin_confidence: np.ndarray  # [CALIBRATION_BINS] sum of top-1 confidences in the bin
    bin_correct: np.ndarray  # [CALIBRATION_BINS] correct top-1 predictions in the bin

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def correct_per_class(self) -> np.ndarray:
        return self.confusion[np.arange(len(self.target_column)), self.target_column]


@torch.no_grad()
def prediction_sums(
    model: torch.nn.Module,
    loader: ImageLoader,
    runtime: Runtime,
    target_column: np.ndarray,
    num_columns: int,
    columns: np.ndarray | None = None,
) -> PredictionSums:
    """Run `model` without noise over one epoch of `loader` and sum up its predictions.

    `columns` (model class of each kept column) restricts the predictions to those classes, as
    ImageNet-A's protocol does; `target_column` maps the data's labels to columns.
    """
    device = runtime.device
    rows = len(target_column)
    targets_of = torch.as_tensor(target_column, dtype=torch.int64, device=device)
    keep = None if columns is None else torch.as_tensor(columns, dtype=torch.int64, device=device)
    confusion = torch.zeros(rows * num_columns, dtype=torch.float64, device=device)
    top5_hits = torch.zeros(rows, dtype=torch.float64, device=device)
    bins = torch.zeros(3, CALIBRATION_BINS, dtype=torch.float64, device=device)
    nll = torch.zeros(1, dtype=torch.float64, device=device)
    with teacher_mode(model):
        for batch in loader:
            logits = model(batch.images).float()
            if keep is not None:
                logits = logits[:, keep]
            targets = targets_of[batch.labels]
            log_probs = F.log_softmax(logits, dim=1)
            nll -= log_probs.gather(1, targets[:, None]).sum()
            confidence, predicted = log_probs.max(dim=1)
            confidence = confidence.exp()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            ones = torch.ones_like(confidence, dtype=torch.float64)
            confusion.index_add_(0, batch.labels * num_columns + predicted, ones)
            top5_hits.index_add_(0, batch.labels, (top == targets[:, None]).any(1).double())
            slot = (confidence * CALIBRATION_BINS).ceil().long().clamp(1, CALIBRATION_BINS) - 1
            bins[0].index_add_(0, slot, ones)
            bins[1].index_add_(0, slot, confidence.double())
            bins[2].index_add_(0, slot, (predicted == targets).double())
    if runtime.distributed:
        for tensor in (confusion, top5_hits, bins, nll):
            dist.all_reduce(tensor)
    return PredictionSums(
        confusion=confusion.view(rows, num_columns).round().long().cpu().numpy(),
        top5_hits=top5_hits.round().long().cpu().numpy(),
        target_column=np.asarray(target_column, dtype=np.int64),
        nll_sum=float(nll.item()),
        bin_count=bins[0].round().long().cpu().numpy(),
        bin_confidence=bins[1].cpu().numpy(),
        bin_correct=bins[2].round().long().cpu().numpy(),
    )


def evaluate_model(
    model: torch.nn.Module, loader: ImageLoader, runtime: Runtime, num_classes: int
) -> EvalResult:
    """Top-1, top-5, loss and per-class top-1 of `model` (no noise) over one epoch of `loader`."""
    sums = prediction_sums(model, loader, runtime, np.arange(num_classes), num_classes)
    return result_of(sums)


def result_of(sums: PredictionSums) -> EvalResult:
    """The accuracy summary of some prediction sums."""
    count = sums.count
    if count == 0:
        raise TrainError("the eval set yielded no images")
    seen = sums.confusion.sum(axis=1)
    return EvalResult(
        top1=float(sums.correct_per_class.sum() / count),
        top5=float(sums.top5_hits.sum() / count),
        loss=sums.nll_sum / count,
        count=count,
        per_class=(sums.correct_per_class / np.maximum(seen, 1)).tolist(),
    )
