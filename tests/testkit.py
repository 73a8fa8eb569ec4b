"""Helpers the engine, CLI and fault tests share (importable as `testkit`: pytest puts tests/ on
the path). Fixtures built from them live in tests/conftest.py; ns_data and ns_models tests use
neither, so they still run where ns_train is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ns_data.loading.config import LoaderConfig
from ns_train.config import LabelConfig, NoiseConfig, OptimConfig, TrainConfig
from ns_train.data import TrainInputs
from ns_train.runs.digits import DigitsSplits, write_digits
from ns_train.trainer import train

CPU_LOADER = LoaderConfig(backend="torch", workers=0)
"""The loader of the engine tests: PyTorch in the main process (no worker start-up)."""
CPU_LABELS = LabelConfig(batch_size=128, device="cpu", loader=CPU_LOADER)
"""Labeling in the engine tests: on the CPU with the same loader."""


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
        "loader": CPU_LOADER,
        "device": "cpu",
    }
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]  # fields vary per test


def small_digits(out: Path) -> DigitsSplits:
    """About 150 unlabeled digits in 4 shards of at most 40; 5 labels per class."""
    return write_digits(out, labels_per_class=5, test_per_class=160, max_count=40)


def tiny_teacher(sets: DigitsSplits, out: Path) -> Path:
    """A B0 checkpoint at 32 px after one short epoch (seconds on a CPU)."""
    config = tiny_config(epochs=1.0, optim=OptimConfig(), noise=NoiseConfig())
    return train(config, TrainInputs(labeled=sets.labeled), out, show_progress=False).checkpoint


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
