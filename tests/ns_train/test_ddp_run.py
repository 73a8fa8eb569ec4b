"""`ns run` under torchrun on the CPU (gloo, 2 ranks): the whole loop once per step, a killed rank
restarted by torchrun, SIGTERM to the group continued on 1 rank, and launches that are refused
(a batch that does not split in-process, as rank 0 of 2)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ns_models import load_checkpoint
from ns_train.config import replace
from ns_train.errors import TrainError
from ns_train.runs import loop
from ns_train.runs.config import load_run_config
from ns_train.runs.digits import DigitsSplits
from ns_train.runs.loop import RunSummary, run
from ns_train.runtime import Runtime

pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> Path:
    folder = tmp_path_factory.mktemp("ddp-run")
    code, output = run_ns(write_config(folder, digits), folder / "run")
    assert code == 0, output[-3000:]
    (folder / "output.txt").write_text(output)
    return folder / "run"


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> RunSummary:
    folder = tmp_path_factory.mktemp("one-rank")
    config = load_run_config(write_config(folder, digits))
    return run(config, folder / "run", show_progress=False)


def test_two_ranks_run_each_step_once_with_the_global_batch(
    two_ranks: Path, one_rank: RunSummary
) -> None:
    found = records(two_ranks)
    assert [(r["iteration"], r["step"]) for r in found] == STEPS
    output = (two_ranks.parent / "output.txt").read_text()
    assert output.count("iteration 0: teacher") == 1  # rank 0 alone tells
    assert output.count("# Noisy Student run") <= 1
    alone = {(r["iteration"], r["step"]): r for r in one_rank.records}
    for record in found:
        if record["step"] in ("teacher", "student"):  # same global batch: same number of steps
            assert record["steps"] == alone[(record["iteration"], record["step"])]["steps"]
            same = alone[(record["iteration"], record["step"])]["top1"]
            # within 4 standard deviations of a 100-image accuracy
            assert abs(record["top1"] - same) <= 4 * math.sqrt(0.25 / 100)
    label = next(r for r in found if r["step"] == "label")
    assert label["samples"] == alone[(1, "label")]["samples"]  # the shards split, none twice
    assert (two_ranks / "report.md").exists() and (two_ranks / ".ns-ranks").exists()


def test_a_killed_rank_is_restarted_by_torchrun_and_the_run_ends_as_if_never_killed(
    two_ranks: Path, digits: DigitsSplits, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    process = torchrun(
        "-m", "ns_cli", "run", str(write_config(tmp_path, digits)), "--out", str(out), "--quiet",
        restarts=1,
    )  # fmt: skip
    wait_for_snapshot(out, process)
    os.kill(rank_process(process.pid, 1), signal.SIGKILL)
    code, output = finish(process)
    assert code == 0, output[-3000:]
    assert [(r["iteration"], r["step"]) for r in records(out)] == STEPS
    resumed, uninterrupted = weights(out), weights(two_ranks)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def test_sigterm_stops_every_rank_with_a_snapshot_and_one_rank_continues(
    digits: DigitsSplits, tmp_path: Path
) -> None:
    config, out = write_config(tmp_path, digits), tmp_path / "run"
    process = torchrun("-m", "ns_cli", "run", str(config), "--out", str(out), "--quiet")
    wait_for_snapshot(out, process)
    time.sleep(1.0)  # a few steps past the periodic snapshot
    process.send_signal(signal.SIGTERM)
    code, output = finish(process)
    assert code != 0 and "stopped by SIGTERM" in output, output[-3000:]
    snapshots = sorted((out / "iter-1/student/state").glob("step-*"))
    assert json.loads((snapshots[-1] / "trainer.json").read_text())["world_size"] == 2
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    alone = subprocess.run(
        [sys.executable, "-m", "ns_cli", "run", str(config), "--out", str(out), "--quiet"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "resuming a 2-rank snapshot on 1 ranks" in alone.stderr
    assert [(r["iteration"], r["step"]) for r in records(out)] == STEPS
    assert (
        weights(out).keys()
        == load_checkpoint(out / "iter-0/teacher/checkpoint")[0].state_dict().keys()
    )


RANK_ARGS = """
import os, sys
from ns_cli.main import main
if os.environ["RANK"] == "1":
    sys.argv += {extra!r}
main()
"""


def launch_with_rank_1_changed(
    tmp_path: Path, digits: DigitsSplits, *extra: str
) -> tuple[int, str]:
    script = tmp_path / "rank_args.py"
    script.write_text(RANK_ARGS.format(extra=list(extra)))
    config = write_config(tmp_path, digits)
    out = tmp_path / "run"
    return finish(torchrun(str(script), "run", str(config), "--out", str(out), "--quiet"))


def test_ranks_with_another_config_are_refused_naming_the_field(
    tmp_path: Path, digits: DigitsSplits
) -> None:
    code, output = launch_with_rank_1_changed(tmp_path, digits, "--set", "student.epochs=0.5")
    assert code != 0
    assert "rank 1 on" in output and "another config than rank 0" in output
    assert "student.epochs" in output
    assert not (tmp_path / "run").exists()


def test_a_run_directory_that_differs_between_ranks_is_refused(
    tmp_path: Path, digits: DigitsSplits
) -> None:
    code, output = launch_with_rank_1_changed(tmp_path, digits, "--out", str(tmp_path / "other"))
    assert code != 0
    assert f"the run directory {tmp_path / 'other'} of rank 1" in output
    assert not (tmp_path / "run/iter-0").exists()


def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused(
    tmp_path: Path, digits: DigitsSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process as rank 0 of 2: the check needs only the world size, and comes first."""
    monkeypatch.setattr(loop, "start", lambda *args: Runtime(torch.device("cpu"), world_size=2))
    config = load_run_config(write_config(tmp_path, digits))
    odd = replace(config, student=replace(config.student, batch_size=15))
    with pytest.raises(TrainError, match=r"student\.batch_size 15 does not divide across 2 ranks"):
        loop.run(odd, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
