"""The engine on a CUDA GPU: bf16 teacher training with the GPU loader, then GPU labeling.

Skipped, with the reason, where CUDA is missing; run on a GPU machine with `pytest -m gpu`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from testkit import tiny_config

from ns_data.labels.store import PseudoLabels
from ns_data.shards.reader import ShardSet
from ns_train.data import TrainInputs
from ns_train.jsonl import read_jsonl
from ns_train.labeler import label
from ns_train.runs.digits import DigitsSplits
from ns_train.trainer import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU is visible"),
]


def test_bf16_teacher_then_labels_on_the_gpu(tmp_path: Path, digits: DigitsSplits) -> None:
    config = tiny_config(device="cuda", bf16=True, backend="auto", workers=2, epochs=1.0)
    result = train(config, TrainInputs(labeled=digits.labeled), tmp_path / "teacher")
    losses = [r["loss"] for r in read_jsonl(tmp_path / "teacher/metrics.jsonl") if "loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    label(
        result.checkpoint,
        digits.unlabeled,
        tmp_path / "labels",
        batch_size=64,
        device="cuda",
        bf16=True,
        show_progress=False,
    )
    store = PseudoLabels(tmp_path / "labels")
    assert len(store) == len(ShardSet(digits.unlabeled))
    probs = store.topk_prob.astype(np.float32)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1, atol=0.02)
