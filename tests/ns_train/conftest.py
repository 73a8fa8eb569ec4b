"""Shared fixtures of the engine tests: real digit shard sets and a tiny trained teacher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ns_train.config import NoiseConfig, OptimConfig, TrainConfig
from ns_train.data import TrainInputs
from ns_train.runs.digits import DigitsSplits, write_digits
from ns_train.trainer import TrainResult, train


def torchrun_ns(*args: str) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc-per-node 2 -m ns_cli ARGS` on the CPU, one thread per rank."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, "-m", "ns_cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def tiny_config(**changes: object) -> TrainConfig:
    """B0 at 32 px, a few steps: enough to exercise every part of the loop in seconds."""
    base: dict[str, object] = {
        "model": "efficientnet_b0",
        "image_size": 32,
        "epochs": 2.0,
        "batch_size": 16,
        "unlabeled_ratio": 2,
        "ema_decay": 0.9,
        "optim": OptimConfig(name="adamw", lr_per_2048=0.1, warmup_epochs=0.5),
        "noise": NoiseConfig(flip=False),
        "backend": "torch",
        "workers": 0,
        "device": "cpu",
    }
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsSplits:
    return write_digits(tmp_path_factory.mktemp("digits"), labels_per_class=5, test_per_class=10)


@pytest.fixture(scope="session")
def teacher(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> TrainResult:
    out = tmp_path_factory.mktemp("teacher")
    return train(
        tiny_config(),
        TrainInputs(labeled=digits.labeled, eval_set=digits.test),
        out,
        show_progress=False,
    )


@pytest.fixture(scope="session")
def labels_dir(
    tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits, teacher: TrainResult
) -> Path:
    from ns_train.labeler import label

    out = tmp_path_factory.mktemp("labels")
    label(
        teacher.checkpoint,
        digits.unlabeled,
        out,
        backend="torch",
        device="cpu",
        workers=0,
        show_progress=False,
    )
    return out
