"""`ns shard` on the command line: a summary on success, one error line and exit 1 on bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from ns_cli.commands import shard
from ns_data.manifest import Manifest


def app() -> typer.Typer:
    """The `shard` command mounted alone (as `ns` mounts it), so sibling commands are not needed."""
    ns = typer.Typer()
    ns.callback()(lambda: None)
    shard.register(ns)
    return ns


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for i, name in enumerate(["cat/a.jpg", "cat/b.jpg", "dog/c.jpg", "dog/bad.jpg"]):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.new("RGB", (8, 6), (i * 40, 0, 0)).save(buffer, format="JPEG")
        path.write_bytes(buffer.getvalue() if "bad" not in name else b"junk")
    return tmp_path / "src"


def test_shard_prints_a_summary(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["shard", str(tree), str(out), "--max-count", "2", "--max-bytes", "1M", "--workers", "1"]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert "3 samples in 2 shards" in result.output
    assert "1 files rejected" in result.output
    assert Manifest.load(out).classes == ["cat", "dog"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-bytes", "lots"], "--max-bytes 'lots' is not a size"),
        (["--kind", "zip"], "kind 'zip' is not one of"),
        (["--quality", "0"], "quality must be in [1, 100]"),
    ],
)
def test_bad_options_exit_1(tree: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(app(), ["shard", str(tree), str(tmp_path / "out"), *extra])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_bad_source_and_existing_set_exit_1(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("src/cat/a.jpg,cat\n")
    result = CliRunner().invoke(app(), ["shard", str(tmp_path / "list.csv"), str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "list.csv:1: label 'cat' is not an integer" in result.output
    out = str(tmp_path / "out")
    assert CliRunner().invoke(app(), ["shard", str(tree), out, "--workers", "1"]).exit_code == 0
    again = CliRunner().invoke(app(), ["shard", str(tree), out])
    assert again.exit_code == 1 and "pass --overwrite" in again.output
