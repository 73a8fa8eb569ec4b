"""Helpers of the 2-rank `ns run` tests (tests/ns_train/test_ddp_run*.py): the tiny run config,
torchrun on the CPU, and what a finished run holds. Importable as `ddpkit` (tests/ is on the path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from ns_models import load_checkpoint
from ns_train.runs.digits import DigitsSplits

STEPS = [
    (0, "teacher"),
    (1, "label"),
    (1, "plan"),
    (1, "student"),
    (1, "iteration"),
]

JOB = """
model = "efficientnet_b0"
image_size = 32
batch_size = 16
unlabeled_ratio = 2
ema_decay = 0.9
backend = "torch"
workers = 0
device = "cpu"
eval_every = 1.0
{extra}
[{name}.optim]
name = "adamw"
lr_per_2048 = 0.1
warmup_epochs = 0.5
[{name}.noise]
flip = false
"""


def write_config(folder: Path, digits: DigitsSplits) -> Path:
    """One iteration of B0 at 32 px: a 2-epoch teacher, a student of about 13 steps over every
    unlabeled image once (no plan: a 6-step teacher's plan is too skewed for a fixed step count)."""
    text = (
        "iterations = 1\nstudents = ['efficientnet_b0']\nfilter_balance = false\nlabel_batch_size = 256\n"
        f'[data]\nlabeled = "{digits.labeled}"\nunlabeled = "{digits.unlabeled}"\n'
        f'eval = "{digits.test}"\n'
        "[teacher]"
        + JOB.format(name="teacher", extra="epochs = 2.0")
        + "[student]"
        + JOB.format(name="student", extra="epochs = 0.25\ncheckpoint_every = 2")
    )
    path = folder / "run.toml"
    path.write_text(text)
    return path


def torchrun(*args: str, restarts: int = 0) -> subprocess.Popen[str]:
    """`torchrun --standalone --nproc-per-node 2 [--max-restarts N] ARGS`, one thread per rank."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "--max-restarts", str(restarts), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=900)
    return process.returncode, output


def run_ns(config: Path, out: Path, *extra: str) -> tuple[int, str]:
    return finish(
        torchrun("-m", "ns_cli", "run", str(config), "--out", str(out), "--quiet", *extra)
    )


def records(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out: Path) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(out / "iter-1/student/checkpoint")
    return model.state_dict()


def wait_for_snapshot(out: Path, process: subprocess.Popen[str]) -> None:
    """Wait until the student has written a snapshot (training is under way)."""
    deadline = time.monotonic() + 600
    while not list((out / "iter-1/student/state").glob("step-*")):
        assert process.poll() is None, "the run ended before the student's first snapshot"
        assert time.monotonic() < deadline, "no student snapshot after 10 minutes"
        time.sleep(0.2)


def rank_process(parent: int, rank: int) -> int:
    """The pid of torchrun's worker with RANK=`rank` (read from /proc)."""
    for child in Path("/proc").glob("[0-9]*"):
        try:
            if int((child / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            environ = (child / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if f"RANK={rank}".encode() in environ:
            return int(child.name)
    raise AssertionError(f"no rank {rank} under process {parent}")
