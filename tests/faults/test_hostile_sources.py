"""Hostile sources for `ns shard`: names that are not UTF-8 or look like markup, symlinks out of
the tree, and WebDataset tars with a sample missing its image, bad `.cls` members, repeated keys,
and members that try to escape (`../`, absolute names, links, devices).

Each case is a one-line error (exit 1, naming the file and the fix) or a counted skip listed in
`rejected.jsonl`; nothing is lost silently and nothing is written outside the output folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from PIL import Image
from typer.testing import CliRunner

from ns_cli.main import app


def jpeg(shade: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), (shade, 40, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def shard(source: Path, out: Path, *options: str) -> tuple[int, str]:
    """`ns shard SOURCE OUT` in this process: (exit code, stdout and stderr)."""
    result = CliRunner().invoke(app, ["shard", str(source), str(out), "--workers", "1", *options])
    return result.exit_code, result.output


def one_line_error(code: int, output: str) -> str:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def members(out: Path) -> list[str]:
    names = []
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as archive:
            names += archive.getnames()
    return names


def rejected(out: Path) -> dict[str, str]:
    lines = (out / "rejected.jsonl").read_text().splitlines()
    return {r["file"]: r["reason"] for r in map(json.loads, lines)}


# --- file names ----------------------------------------------------------------------------


def test_names_that_are_not_utf8_are_sharded_and_listed(tmp_path: Path) -> None:
    """Linux names are bytes: keys spell what is not ASCII as a hash of the name, so `caf\xe9`
    and `caf\xe8` keep two keys; rejected.jsonl keeps the name (surrogate escapes, which
    `os.fsencode` turns back into the very bytes)."""
    source = tmp_path / "photos"
    source.mkdir()
    for name, data in [
        (b"caf\xe9.jpg", jpeg()),
        (b"caf\xe8.jpg", jpeg(50)),
        (b"\xff\xfe.jpg", jpeg(10)),
        (b"bad\xe9.jpg", b"x"),
    ]:
        with open(os.path.join(os.fsencode(source), name), "wb") as handle:
            handle.write(data)
    code, output = shard(source, tmp_path / "set")
    assert code == 0, output
    names = members(tmp_path / "set")
    assert len(set(names)) == 3, names
    assert [re.sub("[0-9a-f]{8}", "HASH", n) for n in names] == ["caf-HASH.jpg"] * 2 + ["HASH.jpg"]
    (name,) = rejected(tmp_path / "set")
    assert os.fsencode(name) == b"bad\xe9.jpg"


def test_a_name_that_looks_like_markup_is_printed_as_it_is(tmp_path: Path) -> None:
    """Error lines are plain text: `[red]` in a file name is not swallowed as a style, `[/...]`
    does not crash the terminal renderer, `:b:` does not become an emoji (all three happened)."""
    source = tmp_path / "[raw]"
    source.mkdir()
    (source / "[red]a.b.jpg").write_bytes(jpeg())
    (source / "[red]a_b.jpg").write_bytes(jpeg())
    line = one_line_error(*shard(source, tmp_path / "set"))
    assert "[red]a_b.jpg and [red]a.b.jpg both give sample key" in line
    (source / "[red]a_b.jpg").unlink()
    (source / "odd[" / "b]").mkdir(parents=True)  # relative paths `odd[/b]/...`: a closing tag
    (source / "odd[" / "b]" / "x.jpg.jpg").write_bytes(jpeg())
    (source / "odd[" / "b]" / "x_jpg.jpg").write_bytes(jpeg())
    line = one_line_error(*shard(source, tmp_path / "set"))
    assert "odd[/b]/x_jpg.jpg and odd[/b]/x.jpg.jpg both give" in line, line


# --- symlinks ------------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """photos/ with an image, a link to an image inside photos/, and two links out of the tree:
    to an image and to a whole folder outside it."""
    outside = tmp_path / "private"
    (outside / "album").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(jpeg(1))
    (outside / "album" / "more.jpg").write_bytes(jpeg(2))
    source = tmp_path / "photos"
    source.mkdir()
    (source / "a.jpg").write_bytes(jpeg(3))
    (source / "again.jpg").symlink_to(source / "a.jpg")
    (source / "secret.jpg").symlink_to(outside / "secret.jpg")
    (source / "album").symlink_to(outside / "album")
    return source


def test_links_inside_the_tree_are_followed(linked: Path, tmp_path: Path) -> None:
    code, output = shard(linked, tmp_path / "set")
    assert code == 0, output
    assert {"a.jpg", "again.jpg"} <= set(members(tmp_path / "set"))


def test_links_out_of_the_tree_are_not_followed(linked: Path, tmp_path: Path) -> None:
    """What a careful user wants by default: a link that leads out of the source folder is not
    followed (it could pull in a private folder), but listed, so nothing is lost silently."""
    code, output = shard(linked, tmp_path / "set")
    assert code == 0 and "2 files rejected" in output, output
    assert sorted(members(tmp_path / "set")) == ["a.jpg", "again.jpg"]
    private = os.path.realpath(tmp_path / "private")
    assert rejected(tmp_path / "set") == {
        name: f"a link to {private}/{name}, outside the source folder: not followed"
        for name in ("secret.jpg", "album")
    }


# --- WebDataset tars -----------------------------------------------------------------------


def write_tar(path: Path, entries: list[tuple[str, bytes] | tarfile.TarInfo]) -> Path:
    """A tar of (name, data) members, or of ready-made headers (links, devices)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
                continue
            name, data = entry
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_sample_without_its_image_is_a_counted_skip(tmp_path: Path) -> None:
    entries = [("a.jpg", jpeg()), ("a.cls", b"0"), ("b.json", b"{}"), ("b.cls", b"1")]
    entries += [("c.jpg", jpeg()), ("c.cls", b"1")]
    write_tar(tmp_path / "in" / "part-000000.tar", entries)
    code, output = shard(tmp_path / "in", tmp_path / "set")
    assert code == 0 and "1 files rejected" in output, output
    assert members(tmp_path / "set") == ["a.jpg", "a.cls", "c.jpg", "c.cls"]
    assert list(rejected(tmp_path / "set")) == ["part-000000.tar:b"]


@pytest.mark.parametrize(
    ("label", "classes", "message"),
    [
        (b"cat", None, r"part-000000.tar:b.cls holds 'cat', not a class index; fix the shard"),
        (b"-1", None, r"part-000000.tar:b.cls holds '-1', not a class index; fix the shard"),
        (b"1.5", None, r"holds '1.5', not a class index"),
        (b"7", "cat\ndog\n", r"part-000000.tar:b: class index 7 is out of range \[0, 2\)"),
    ],
    ids=["word", "negative", "fraction", "out-of-range"],
)
def test_a_bad_cls_is_one_error_line(
    tmp_path: Path, label: bytes, classes: str | None, message: str
) -> None:
    entries = [("a.jpg", jpeg()), ("a.cls", b"0"), ("b.jpg", jpeg()), ("b.cls", label)]
    write_tar(tmp_path / "in" / "part-000000.tar", entries)
    options = []
    if classes is not None:
        (tmp_path / "classes.txt").write_text(classes)
        options = ["--classes", str(tmp_path / "classes.txt")]
    line = one_line_error(*shard(tmp_path / "in", tmp_path / "set", *options))
    assert re.search(message, line), line
    assert not (tmp_path / "set" / "manifest.json").exists()


def test_a_key_in_two_tars_is_one_error_line(tmp_path: Path) -> None:
    write_tar(tmp_path / "in" / "part-000000.tar", [("a.jpg", jpeg()), ("b.jpg", jpeg())])
    write_tar(tmp_path / "in" / "part-000001.tar", [("b.jpg", jpeg(20))])
    line = one_line_error(*shard(tmp_path / "in", tmp_path / "set"))
    assert "both give sample key 'b'" in line, line


def test_a_key_repeated_inside_one_tar_is_not_silently_merged(tmp_path: Path) -> None:
    """A member repeating its sample's extension, or a second image, is listed; the first kept."""
    entries = [("a.jpg", jpeg()), ("a.cls", b"0"), ("b.jpg", jpeg(1)), ("b.cls", b"1")]
    entries += [("b.jpg", jpeg(2)), ("b.cls", b"0"), ("b.png", jpeg(3))]
    write_tar(tmp_path / "in" / "part-000000.tar", entries)
    code, output = shard(tmp_path / "in", tmp_path / "set")
    assert code == 0 and "3 files rejected" in output, output
    assert rejected(tmp_path / "set") == {
        f"part-000000.tar:{name}": "key repeated inside the tar: the first is kept"
        for name in ("b.jpg", "b.cls", "b.png")
    }
    samples = list(wds.WebDataset([str(tmp_path / "set" / "set-000000.tar")], shardshuffle=False))
    assert [(s["__key__"], s["jpg"], s["cls"]) for s in samples] == [
        ("a", jpeg(), b"0"),
        ("b", jpeg(1), b"1"),
    ]


def _special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_members_that_try_to_escape_write_nothing_outside_the_output(tmp_path: Path) -> None:
    """`../`, absolute names, symbolic and hard links and a device: refused and listed; the
    samples beside them are kept; not one file appears outside the output folder."""
    work = tmp_path / "work"
    target = tmp_path / "absolute-target"
    target.mkdir()
    entries: list[tuple[str, bytes] | tarfile.TarInfo] = [("ok.jpg", jpeg()), ("ok.cls", b"0")]
    entries += [("../escape.jpg", jpeg()), ("../escape.cls", b"0")]
    entries += [(f"{target}/abs.jpg", jpeg()), (f"{target}/abs.cls", b"0")]
    entries += [
        _special("link.jpg", tarfile.SYMTYPE, "/etc/passwd"),
        _special("hard.jpg", tarfile.LNKTYPE, "ok.jpg"),
        _special("dev.jpg", tarfile.CHRTYPE),
    ]
    write_tar(work / "in" / "part-000000.tar", entries)
    before = sorted(p for p in tmp_path.rglob("*"))
    code, output = shard(work / "in", work / "out" / "set")
    assert code == 0, output
    created = sorted(set(tmp_path.rglob("*")) - set(before))
    outside = [p for p in created if not p.is_relative_to(work / "out")]
    assert not outside, f"written outside the output folder: {outside}"
    assert not list(target.iterdir()) and not (work / "escape.jpg").exists()
    assert members(work / "out" / "set") == ["ok.jpg", "ok.cls"]
    refused = rejected(work / "out" / "set")
    assert len(refused) == 7 and all("refused" in why for why in refused.values()), refused
