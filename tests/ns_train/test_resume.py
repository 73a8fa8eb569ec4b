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

from ns_data.digits import DigitsSplits
from ns_data.loader import dali_available
from ns_train.data import TrainInputs
from ns_train.errors import TrainError
from ns_train.state import latest_snapshot
from ns_train.trainer import train

from .conftest import tiny_config

CONFIG = {"epochs": 3.0, "checkpoint_every": 3, "keep_checkpoints": 2}

RUN_JOB = """
import importlib.util
from pathlib import Path
spec = importlib.util.spec_from_file_location("engine_conftest", {conftest!r})
conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)
tiny_config = conftest.tiny_config
from ns_train.data import TrainInputs
from ns_train.trainer import train
train(tiny_config(**{config!r}), TrainInputs(labeled=Path({labeled!r})), Path({out!r}), show_progress=False)
"""


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoint" / "weights.safetensors"))


NO_DALI = not dali_available()
DALI = pytest.param(
    "dali-cpu",
    marks=[pytest.mark.dali, pytest.mark.skipif(NO_DALI, reason="nvidia.dali is not installed")],
)


@pytest.mark.parametrize("backend", ["torch", DALI])
def test_killed_and_resumed_job_matches_an_uninterrupted_one(
    tmp_path: Path, digits: DigitsSplits, backend: str
) -> None:
    config = {**CONFIG, "backend": backend}
    inputs = TrainInputs(labeled=digits.labeled)
    straight = tmp_path / "straight"
    train(tiny_config(**config), inputs, straight, show_progress=False)

    killed = tmp_path / "killed"
    script = RUN_JOB.format(
        conftest=str(Path(__file__).with_name("conftest.py")),
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
