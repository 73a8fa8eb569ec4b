"""`ns run` from a TOML file as a user runs it (a process of its own): a tiny digits run; then
`ns status` and the reruns in-process (their point is what they print, not the process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ns_cli.main import app

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
    runner, env = CliRunner(), {"NS_DEBUG": "0", "COLUMNS": "200"}
    status = runner.invoke(app, ["status", str(out)], env=env)
    assert status.exit_code == 0 and status.stdout.count("done") == 5
    scripted = json.loads(runner.invoke(app, ["status", str(out), "--json"], env=env).stdout)
    assert [step["state"] for step in scripted["steps"]] == ["done"] * 5
    assert scripted["steps"][0] == {
        **scripted["steps"][0],
        "iteration": 0,
        "step": "teacher",
        "path": str(out / "iter-0/teacher"),
    }
    again = runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"], env=env)
    assert again.exit_code == 0 and again.stdout.count("skipped") == 6
    changed = runner.invoke(
        app, ["run", str(config), "--out", str(out), "--set", "iterations=2"], env=env
    )
    assert changed.exit_code == 1 and "made by another config" in changed.stderr
