"""`ns shard` on the command line: a summary on success, one error line and exit 1 on bad input;
.tar.gz sources, damaged tars (kept or, with --strict, stopped at) and a busy output folder."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import typer
import webdataset as wds
from PIL import Image
from typer.testing import CliRunner

from ns_cli.commands import shard
from ns_cli.errors import ReportingGroup
from ns_data.shards.manifest import Manifest


def app() -> typer.Typer:
    """The `shard` command mounted alone (as `ns` mounts it), so sibling commands are not needed."""
    ns = typer.Typer(cls=ReportingGroup)
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


def test_the_summary_prints_names_that_look_like_markup_as_they_are(tmp_path: Path) -> None:
    """`[bold]` in a class name is not swallowed as a style, `:b:` is not an emoji, and `[/b]` in
    the output path does not crash the renderer."""
    for folder in ("[bold]x", "b[red]", ":b:"):
        path = tmp_path / "src" / folder / "a.jpg"
        path.parent.mkdir(parents=True)
        Image.new("RGB", (8, 6)).save(path)
    (tmp_path / "src" / ":b:" / "bad.jpg").write_bytes(b"junk")
    out = tmp_path / "odd[" / "b]" / "set"
    args = ["shard", str(tmp_path / "src"), str(out), "--workers", "1"]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert f"{out}: 3 samples in 1 shards" in result.output
    assert "3 classes: :b:: 1, [bold]x: 1, b[red]: 1" in result.output
    assert f"1 files rejected: see {out}/rejected.jsonl" in result.output


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


def noise_jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_wds(path: Path, first: int, count: int) -> None:
    """A tar (gzip-compressed when the name says so) of `count` samples written by webdataset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as sink:
        for n in range(first, first + count):
            sink.write({"__key__": f"s{n:02d}", "jpg": noise_jpeg(n), "cls": n % 3})


def read_set(out: Path) -> list[tuple[str, bytes, int]]:
    """(key, image bytes, label) of every sample of a shard set, read back with webdataset."""
    tars = sorted(str(p) for p in out.glob("*.tar"))
    samples = wds.WebDataset(tars, shardshuffle=False)
    return [(s["__key__"], s["jpg"], int(s["cls"])) for s in samples]


def test_tar_gz_shards_are_a_source(tmp_path: Path) -> None:
    (tmp_path / "wds").mkdir()
    with wds.ShardWriter(str(tmp_path / "wds/part-%03d.tar.gz"), maxcount=3, verbose=0) as sink:
        for n in range(7):
            sink.write({"__key__": f"s{n:02d}", "jpg": noise_jpeg(n), "cls": n % 3})
    write_wds(tmp_path / "wds/plain.tar", 7, 2)
    write_wds(tmp_path / "wds/zz.tgz", 9, 2)
    out = tmp_path / "out"
    args = ["shard", str(tmp_path / "wds"), str(out), "--max-count", "4", "--workers", "2"]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert "11 samples in 3 shards" in result.output
    assert read_set(out) == [(f"s{n:02d}", noise_jpeg(n), n % 3) for n in range(11)]
    assert not (out / ".ns-shard").exists()


def damage_tars(folder: Path) -> None:
    """a.tar, d.tgz sound (4 samples); b.tar cut inside s11.jpg; c.tar's s21.jpg header broken.

    webdataset writes `KEY.cls` before `KEY.jpg`, so s11 and s21 lose their image: 2 samples of
    b.tar and c.tar are kept."""
    for name, first in [("a.tar", 0), ("b.tar", 10), ("c.tar", 20), ("d.tgz", 30)]:
        write_wds(folder / name, first, 2 if name[0] in "ad" else 3)
    with tarfile.open(folder / "b.tar") as tar:
        cut = next(m for m in tar.getmembers() if m.name == "s11.jpg").offset_data + 50
    (folder / "b.tar").write_bytes((folder / "b.tar").read_bytes()[:cut])
    with tarfile.open(folder / "c.tar") as tar:
        header = next(m for m in tar.getmembers() if m.name == "s21.jpg").offset
    data = bytearray((folder / "c.tar").read_bytes())
    data[header : header + 64] = b"\xff" * 64
    (folder / "c.tar").write_bytes(bytes(data))


def test_damaged_tars_among_good_ones_keep_going(tmp_path: Path) -> None:
    damage_tars(tmp_path / "wds")
    out = tmp_path / "out"
    result = CliRunner().invoke(app(), ["shard", str(tmp_path / "wds"), str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "2 damaged source tars (b.tar, c.tar): their samples before the damage" in result.output
    assert [key for key, _, _ in read_set(out)] == ["s00", "s01", "s10", "s20", "s30", "s31"]
    rows = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [row["file"] for row in rows] == ["b.tar", "c.tar"]
    assert "member s11.jpg is cut short" in rows[0]["reason"]
    assert "unreadable header after member s21.cls (byte " in rows[1]["reason"]  # cls first
    assert Manifest.load(out).extra["rejected"] == 2


def test_strict_stops_at_the_first_damaged_tar(tmp_path: Path) -> None:
    damage_tars(tmp_path / "wds")
    out = tmp_path / "out"
    args = ["shard", str(tmp_path / "wds"), str(out), "--strict"]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "wds/b.tar is a damaged tar: member s11.jpg is cut short" in result.output
    assert not out.exists()


_SLOW_SHARD = """
import sys, time
from ns_data.ingest import pipeline as sharding
write = sharding.write_shard
def slow(job):
    time.sleep(0.2)
    return write(job)
sharding.write_shard = slow
from ns_cli.main import main
sys.argv = ["ns", "shard", *sys.argv[1:]]
main()
"""


def test_two_ns_shard_on_one_output_give_the_clean_message(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(tree), str(out), "--max-count", "1", "--workers", "1"]
    first = subprocess.Popen([sys.executable, "-c", _SLOW_SHARD, *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / ".ns-shard").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second = CliRunner().invoke(app(), ["shard", *args])
    assert first.wait(timeout=120) == 0
    assert second.exit_code == 1 and "Errno" not in second.output
    assert f"out is in use by ns pid {first.pid} on host " in second.output
    assert "; wait for it or stop it" in second.output
    assert Manifest.load(out).num_samples == 3 and not (out / ".ns-lock").exists()
