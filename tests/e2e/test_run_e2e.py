"""`ns run` from a TOML file as a user runs it: a tiny digits run, `ns status`, a rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = """
preset = "digits-demo"
iterations = 1
threshold = 0.0
unnoised_baseline = false

[data]
labels_per_class = 5
test_per_class = 10

[teacher]
epochs = 2.0
batch_size = 16
loader = { backend = "torch", workers = 0 }
device = "cpu"
eval_every = 1.0

[label]
device = "cpu"
loader = { backend = "torch", workers = 0 }

[robustness]
corruptions = ["gaussian_noise", "contrast"]
severities = [1, 5]
images_per_class = 2

[student]
epochs = 0.1
batch_size = 16
loader = { backend = "torch", workers = 0 }
device = "cpu"
eval_every = 1.0
"""


def ns(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NS_DEBUG": "0", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ns_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_run_status_and_rerun(tmp_path: Path) -> None:
    config, out = tmp_path / "tiny.toml", tmp_path / "run"
    config.write_text(TINY)
    first = ns("run", str(config), "--out", str(out), "--quiet")
    assert first.returncode == 0, first.stderr
    assert "teacher top-1" in first.stdout and (out / "report.md").exists()
    status = ns("status", str(out))
    assert status.returncode == 0 and status.stdout.count("done") == 5
    scripted = json.loads(ns("status", str(out), "--json").stdout)
    assert [step["state"] for step in scripted["steps"]] == ["done"] * 5
    assert scripted["steps"][0] == {
        **scripted["steps"][0],
        "iteration": 0,
        "step": "teacher",
        "path": str(out / "iter-0/teacher"),
    }
    again = ns("run", str(config), "--out", str(out), "--quiet")
    assert again.returncode == 0 and again.stdout.count("skipped") == 6
    changed = ns("run", str(config), "--out", str(out), "--set", "iterations=2")
    assert changed.returncode == 1 and "made by another config" in changed.stderr
