"""Exact resume: a job killed with SIGKILL and resumed ends with the same weights as one never killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from testkit import tiny_config

from ns_data.loading.config import LoaderConfig
from ns_data.loading.loader import dali_available
from ns_train.data import TrainInputs
from ns_train.errors import TrainError
from ns_train.runs.digits import DigitsSplits
from ns_train.state import latest_snapshot
from ns_train.trainer import train

CONFIG = {"epochs": 3.0, "checkpoint_every": 3, "keep_checkpoints": 2}

RUN_JOB = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from testkit import tiny_config
from ns_data.loading.config import LoaderConfig
from ns_train.data import TrainInputs
from ns_train.trainer import train
train(tiny_config(**{config!r}), TrainInputs(labeled=Path({labeled!r})), Path({out!r}), show_progress=False)
"""


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoint" / "model.safetensors"))


NO_DALI = not dali_available()
DALI = pytest.param(
    "dali-cpu",
    marks=[pytest.mark.dali, pytest.mark.skipif(NO_DALI, reason="nvidia.dali is not installed")],
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", DALI])
def test_killed_and_resumed_job_matches_an_uninterrupted_one(
    tmp_path: Path, digits: DigitsSplits, backend: str
) -> None:
    config = {**CONFIG, "loader": LoaderConfig(backend=backend, workers=0)}
    inputs = TrainInputs(labeled=digits.labeled)
    straight = tmp_path / "straight"
    train(tiny_config(**config), inputs, straight, show_progress=False)

    killed = tmp_path / "killed"
    script = RUN_JOB.format(
        tests=str(Path(__file__).parents[1]),
        config=config,
        labeled=str(digits.labeled),
        out=str(killed),
    )
    job = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 240
    while (
        latest_snapshot(killed) is None or latest_snapshot(killed).name < "step-00000003"
    ) and job.poll() is None:
        assert time.monotonic() < deadline, "the job wrote no snapshot in time"
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert not (killed / "checkpoint").exists(), "the job finished before it could be killed"

    with pytest.raises(TrainError, match="--resume"):
        train(tiny_config(**config), inputs, killed, show_progress=False)
    train(tiny_config(**config), inputs, killed, resume=True, show_progress=False)

    expected, resumed = weights(straight), weights(killed)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    assert len(list((killed / "state").iterdir())) == CONFIG["keep_checkpoints"]
    steps = [
        line for line in (killed / "metrics.jsonl").read_text().splitlines() if '"train"' in line
    ]
    assert len(steps) == len(set(steps)), "a resumed job logs each step once"


@pytest.mark.slow
def test_sigterm_snapshots_the_current_step_and_exits_143(
    tmp_path: Path, digits: DigitsSplits
) -> None:
    """A scheduler's SIGTERM: the job stops after the step in flight with a snapshot of it (no
    periodic snapshot is due), exits 128 + 15, and `--resume` finishes from there."""
    out = tmp_path / "job"
    settings = [
        *("--set", "epochs=12", "--set", "batch_size=16", "--set", "image_size=32"),
        *("--set", "backend=torch", "--set", "workers=0", "--set", "device=cpu"),
        *("--set", "checkpoint_every=0", "--set", "optim.name=adamw"),
    ]
    command = [sys.executable, "-m", "ns_cli", "train", "--labeled", str(digits.labeled)]
    command += ["--out", str(out), *settings]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 240
    while not (metrics.exists() and '"train"' in metrics.read_text()) and job.poll() is None:
        assert time.monotonic() < deadline, "the job logged no step in time"
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 143, stderr
    assert "stopped by SIGTERM at step" in stderr and "--resume" in stderr
    snapshot = latest_snapshot(out)
    assert snapshot is not None and not (out / "checkpoint").exists()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "checkpoint").exists()
    steps = [line for line in metrics.read_text().splitlines() if '"train"' in line]
    assert len(steps) == len(set(steps)), "the resumed job logs each step once"
