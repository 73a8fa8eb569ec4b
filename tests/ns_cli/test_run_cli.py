"""`ns run`, `ns status` and `ns demo` on the command line: help, presets, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ns_cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["run", "status", "demo"])
def test_help_shows_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_list_presets_names_each_recipe() -> None:
    result = runner.invoke(app, ["run", "--list-presets"])
    assert result.exit_code == 0
    for name in ("digits-demo", "imagenet-b0-b7-l2", "custom-folder"):
        assert name in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "imagenet"], "unknown preset 'imagenet': did you mean 'imagenet-b0-b7-l2'?"),
        ([], "give a config file, --preset NAME (see --list-presets), or the image folders"),
        (["--preset", "digits-demo", "--set", "iteratons=3"], "did you mean 'iterations'?"),
        (["--preset", "digits-demo", "--set", "teacher.model=efficientnet_b3"], "smaller than"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", *args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert message in result.output and result.output.strip().count("\n") <= 1
    assert not (tmp_path / "run").exists()


def test_unknown_field_in_a_config_file_names_the_nearest(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('preset = "digits-demo"\n[student.noise]\ndroprate = 0.0\n')
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "unknown field config.student.noise.droprate; did you mean 'drop_rate'?" in result.output


def test_status_of_a_folder_that_is_no_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 1 and "not a run directory" in result.output
