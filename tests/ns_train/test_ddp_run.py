"""`ns run` under torchrun on the CPU (gloo, 2 ranks): the whole loop once per step, and a killed
rank restarted by torchrun ending with the weights of a run never killed. SIGTERM and the refused
launches are in test_ddp_run_stops.py (a file of its own, so that the two share the workers)."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest
import torch
from ddpkit import (
    STEPS,
    finish,
    rank_process,
    records,
    run_ns,
    torchrun,
    wait_for_snapshot,
    weights,
    write_config,
)

from ns_train.runs.config import load_run_config
from ns_train.runs.digits import DigitsSplits
from ns_train.runs.loop import RunSummary, run

pytestmark = pytest.mark.slow


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
