"""`ns run` under torchrun on the CPU (gloo, 2 ranks): SIGTERM to the group stops every rank with a
snapshot and one rank continues it; launches that are refused (another config or run directory on
rank 1; a batch that does not split, in-process as rank 0 of 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ddpkit import (
    STEPS,
    finish,
    records,
    torchrun,
    wait_for_snapshot,
    weights,
    write_config,
)

from ns_models import load_checkpoint
from ns_train.config import replace
from ns_train.errors import TrainError
from ns_train.runs import loop
from ns_train.runs.config import load_run_config
from ns_train.runs.digits import DigitsSplits
from ns_train.runtime import Runtime

pytestmark = pytest.mark.slow


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
