"""DDP through torchrun on the CPU (gloo): two ranks train one job; a batch that does not split is
refused (in-process as rank 0 of 2: the check needs only the world size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from testkit import tiny_config, torchrun_ns

from ns_train import trainer
from ns_train.data import TrainInputs
from ns_train.errors import TrainError
from ns_train.runs.digits import DigitsSplits
from ns_train.runtime import Runtime

TINY = [
    "--set", "model=efficientnet_b0", "--set", "image_size=32", "--set", "epochs=2",
    "--set", "backend=torch", "--set", "workers=0", "--set", "device=cpu", "--set", "eval_every=1",
    "--set", "optim.name=adamw",
]  # fmt: skip


@pytest.mark.slow
def test_two_ranks_train_one_job(tmp_path: Path, digits: DigitsSplits) -> None:
    out = tmp_path / "ddp"
    args = [
        "train",
        "--labeled",
        str(digits.labeled),
        "--eval",
        str(digits.test),
        "--out",
        str(out),
    ]
    result = torchrun_ns(*args, *TINY, "--set", "batch_size=16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "checkpoint" / "model.safetensors").exists()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    # rank 0 alone writes; the eval covers the whole test set (100 images) split over both ranks
    assert evals and all(r["step"] <= 6 for r in records)
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["num_classes"] == 10 and config["ns"]["extra"]["eval"]["count"] == 100


def test_batch_that_does_not_split_across_ranks_is_refused(
    tmp_path: Path, digits: DigitsSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "start", lambda *args: Runtime(torch.device("cpu"), world_size=2))
    out = tmp_path / "odd"
    with pytest.raises(TrainError, match="batch_size 15 does not divide across 2 ranks; use a"):
        trainer.train(tiny_config(batch_size=15), TrainInputs(labeled=digits.labeled), out)
    assert not (out / "checkpoint").exists()
