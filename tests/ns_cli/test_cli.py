"""The `ns` command line: help, and one-line errors with exit code 1 for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ns_cli.console import PIPED_WIDTH, report_console
from ns_cli.main import app
from ns_data.digits import write_digits

runner = CliRunner()


def ns(*args: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point, as a user would."""
    env = {**os.environ, "NS_DEBUG": "1" if debug else "0"}
    return subprocess.run(
        [sys.executable, "-m", "ns_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "shard",
        "info",
        "train",
        "label",
        "select",
        "eval",
        "corrupt",
        "run",
        "status",
        "demo",
    ):
        assert command in result.output


def test_cli_start_imports_no_torch_timm_or_dali() -> None:
    """`ns --help`, `ns info SHARDS` and `ns status RUN` start without the heavy libraries."""
    heavy = ("torch", "timm", "nvidia.dali", "numba", "matplotlib")
    probe = f"import sys, ns_cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["train", "label", "eval", "demo", "info"])
def test_each_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory):
    return write_digits(tmp_path_factory.mktemp("digits"), labels_per_class=5, test_per_class=10)


def test_missing_path_is_one_line_exit_1(tmp_path: Path) -> None:
    result = ns("train", "--labeled", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_is_one_line_exit_1(tmp_path: Path, sets) -> None:
    result = ns(
        "train",
        "--labeled",
        str(sets.labeled),
        "--out",
        str(tmp_path),
        "--set",
        "model=efficientnet_b9",
    )
    assert result.returncode == 1 and "efficientnet_b9" in result.stderr
    assert "Traceback" not in result.stderr


def test_unlabeled_set_as_labeled_data_is_one_line_exit_1(tmp_path: Path, sets) -> None:
    result = ns("train", "--labeled", str(sets.unlabeled), "--out", str(tmp_path))
    assert result.returncode == 1 and "has no labels" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = ns("eval", "--checkpoint", str(tmp_path / "nope"), "--data", str(tmp_path), debug=True)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_report_tables_are_not_squeezed_when_piped() -> None:
    """Piped or logged output gets 140 columns, not rich's 80 (the report table needs ~130)."""
    assert report_console().width == PIPED_WIDTH
