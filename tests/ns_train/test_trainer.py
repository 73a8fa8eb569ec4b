"""The training loop on real data: teacher, student, outputs, and refusals of bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from testkit import tiny_config

from ns_data.shards.reader import ShardSet
from ns_models import load_checkpoint
from ns_train.config import TrainConfig, from_dict
from ns_train.data import TrainInputs
from ns_train.errors import TrainError
from ns_train.jsonl import read_jsonl
from ns_train.metrics import RunningMeans
from ns_train.runs.digits import DigitsSplits
from ns_train.trainer import TrainResult, train


def test_teacher_writes_checkpoint_metrics_and_plot(teacher: TrainResult) -> None:
    out = teacher.checkpoint.parent
    _, meta = load_checkpoint(teacher.checkpoint)
    assert meta.class_names == [str(d) for d in range(10)] and meta.ema and meta.image_size == 32
    records = read_jsonl(out / "metrics.jsonl")
    assert any(r["kind"] == "train" for r in records)
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals and 0 <= evals[-1]["top1"] <= 1
    assert teacher.eval is not None and teacher.eval.count == 100
    assert (out / "training.png").stat().st_size > 0
    assert (
        json.loads((out / "train_config.json").read_text())["config"]["model"] == "efficientnet_b0"
    )
    assert any((out / "tensorboard").iterdir())


def test_student_trains_on_labeled_and_pseudo_labeled(
    tmp_path: Path, digits: DigitsSplits, labels_dir: Path, teacher: TrainResult
) -> None:
    inputs = TrainInputs(
        labeled=digits.labeled,
        unlabeled=digits.unlabeled,
        pseudo_labels=labels_dir,
        init=teacher.checkpoint,
    )
    result = train(tiny_config(epochs=0.2), inputs, tmp_path, show_progress=False)
    records = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert records and records[-1]["loss_pseudo"] > 0 and records[-1]["loss_labeled"] > 0
    unlabeled_batches = len(ShardSet(digits.unlabeled)) // (16 * 2)
    assert result.steps == math.ceil(0.2 * unlabeled_batches)


def test_running_means_read_once_per_log_line() -> None:
    means = RunningMeans()
    for value in (1.0, 2.0, 6.0):
        means.add(loss=torch.tensor(value), part=torch.tensor(value * 2))
    assert means.pop() == {"loss": 3.0, "part": 6.0}
    assert means.pop() == {}


def test_unlabeled_set_is_refused_as_labeled_data(tmp_path: Path, digits: DigitsSplits) -> None:
    with pytest.raises(TrainError, match="has no labels"):
        train(tiny_config(), TrainInputs(labeled=digits.unlabeled), tmp_path, show_progress=False)


def test_student_without_pseudo_labels_is_refused(tmp_path: Path, digits: DigitsSplits) -> None:
    with pytest.raises(TrainError, match="--pseudo-labels"):
        train(
            tiny_config(),
            TrainInputs(labeled=digits.labeled, unlabeled=digits.unlabeled),
            tmp_path,
            show_progress=False,
        )


def test_config_names_the_nearest_field() -> None:
    with pytest.raises(
        TrainError, match=r"unknown field config.optim.lr_per_2084; did you mean 'lr_per_2048'"
    ):
        from_dict(TrainConfig, {"optim": {"lr_per_2084": 0.1}})
    assert from_dict(TrainConfig, {"noise": {"crop_scale": [0.5, 1.0]}}).noise.crop_scale == (
        0.5,
        1.0,
    )


def test_bad_values_name_the_field() -> None:
    with pytest.raises(TrainError, match="batch_size must be positive"):
        tiny_config(batch_size=0)


def test_finetune_freezes_stem_and_first_blocks(
    tmp_path: Path, digits: DigitsSplits, teacher: TrainResult
) -> None:
    inputs = TrainInputs(labeled=digits.labeled, init=teacher.checkpoint)
    config = tiny_config(epochs=1.0, freeze_blocks=2, ema_decay=None, image_size=40)
    result = train(config, inputs, tmp_path, show_progress=False)
    before = load_file(str(teacher.checkpoint / "model.safetensors"))
    after = load_file(str(result.checkpoint / "model.safetensors"))
    frozen = [k for k in before if k.startswith(("conv_stem.", "bn1.", "blocks.0.", "blocks.1."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["blocks.3.0.conv_pw.weight"], after["blocks.3.0.conv_pw.weight"])
    assert load_checkpoint(result.checkpoint)[1].image_size == 40
