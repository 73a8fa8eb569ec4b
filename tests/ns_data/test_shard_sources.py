"""Reading `ns shard` sources: order, keys, labels, .tar.gz, damaged tars, refused members, and
one-line errors for bad input."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from ns_data.errors import DataError
from ns_data.ingest.pipeline import ShardConfig, shard_images
from ns_data.ingest.sources import read_bytes, read_items, read_source, sample_key


def jpeg(width: int = 8, height: int = 6, shade: int = 100) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 50, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def put(path: Path, data: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg() if data is None else data)
    return path


def test_sample_key_has_no_dots_and_keeps_folders() -> None:
    assert sample_key("cat/a.b.jpg") == "cat/a_b"
    assert sample_key("noext") == "noext"
    # not ASCII: spelt in ASCII where NFKD can, plus a stable hash of the part
    assert sample_key("./x/café photo.JPEG") == "x/cafe_photo-2c331559"
    assert sample_key("собака/a.jpg") == "12632887/a"
    assert sample_key("__meta__/a.jpg") == "__meta__-adde3b54/a"  # webdataset skips `__meta__/`
    assert sample_key("a/__meta__.jpg") == "a/__meta__"


def test_imagefolder_sorted_classes_and_keys(tmp_path: Path) -> None:
    for rel in ("dog/2.jpg", "cat/b.jpg", "cat/a.b.jpg", "dog/1.png", "cat/.DS_Store"):
        put(tmp_path / "src" / rel)
    source = read_source(tmp_path / "src")
    assert source.kind == "imagefolder"
    assert source.classes == ["cat", "dog"]
    assert [(i.key, i.label) for i in source.items] == [
        ("cat/a_b", 0),
        ("cat/b", 0),
        ("dog/1", 1),
        ("dog/2", 1),
    ]


def test_classes_file_sets_the_order(tmp_path: Path) -> None:
    put(tmp_path / "src/cat/a.jpg")
    put(tmp_path / "src/dog/a.jpg")
    (tmp_path / "classes.txt").write_text("dog\ncat\nbird\n")
    source = read_source(tmp_path / "src", classes_file=tmp_path / "classes.txt")
    assert source.classes == ["dog", "cat", "bird"]
    assert [i.label for i in source.items] == [1, 0]
    (tmp_path / "classes.txt").write_text("dog\n")
    with pytest.raises(DataError, match=r"class folder .*cat is not in .*classes\.txt"):
        read_source(tmp_path / "src", classes_file=tmp_path / "classes.txt")


def test_nested_folder_is_unlabeled(tmp_path: Path) -> None:
    put(tmp_path / "src/top.jpg")
    put(tmp_path / "src/a/b/deep.png")
    source = read_source(tmp_path / "src")
    assert source.kind == "folder" and source.classes is None
    assert [i.key for i in source.items] == ["a/b/deep", "top"]
    assert read_source(tmp_path / "src/a", kind="folder").classes is None


def test_csv_with_indices_names_and_header(tmp_path: Path) -> None:
    put(tmp_path / "img/x.jpg")
    put(tmp_path / "img/y.jpg")
    (tmp_path / "list.csv").write_text("path,label\nimg/x.jpg,2\nimg/y.jpg,0\n")
    source = read_source(tmp_path / "list.csv")
    assert source.classes == ["0", "1", "2"]
    assert [(i.key, i.label) for i in source.items] == [("img/x", 2), ("img/y", 0)]
    (tmp_path / "names.csv").write_text("img/x.jpg,dog\nimg/y.jpg,cat\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    named = read_source(tmp_path / "names.csv", classes_file=tmp_path / "classes.txt")
    assert [i.label for i in named.items] == [1, 0]


def test_jsonl_unlabeled_and_labeled(tmp_path: Path) -> None:
    put(tmp_path / "x.jpg")
    (tmp_path / "a.jsonl").write_text(json.dumps({"path": "x.jpg"}) + "\n")
    assert read_source(tmp_path / "a.jsonl").classes is None
    (tmp_path / "b.jsonl").write_text(json.dumps({"path": "x.jpg", "label": 1}) + "\n")
    assert read_source(tmp_path / "b.jsonl").items[0].label == 1


@pytest.mark.parametrize(
    ("rows", "classes", "message"),
    [
        ("x.jpg,cat\n", None, r"list.csv:1: label 'cat' is not an integer .*--classes"),
        (
            "x.jpg,bird\n",
            "cat\ndog\n",
            r"list.csv:1: unknown class 'bird'; add it to .*classes.txt",
        ),
        ("x.jpg,1.5\n", None, "is not an integer class index"),
        ("x.jpg,0\nx.jpg,0\n", None, "x.jpg is listed twice"),
        ("missing.jpg,0\n", None, r"list.csv:1: .*missing.jpg is not a file"),
        ("x.jpg,0\ny.jpg\n", None, "list.csv:2: every row needs a label or none does"),
        ("", None, "has no rows"),
    ],
)
def test_bad_lists(tmp_path: Path, rows: str, classes: str | None, message: str) -> None:
    put(tmp_path / "x.jpg")
    put(tmp_path / "y.jpg")
    (tmp_path / "list.csv").write_text(rows)
    classes_file = None
    if classes is not None:
        classes_file = tmp_path / "classes.txt"
        classes_file.write_text(classes)
    with pytest.raises(DataError, match=message):
        read_source(tmp_path / "list.csv", classes_file=classes_file)


def test_colliding_keys_name_both_files(tmp_path: Path) -> None:
    put(tmp_path / "src/a.b.jpg")
    put(tmp_path / "src/a_b.jpg")
    with pytest.raises(DataError, match=r"a_b.jpg and a.b.jpg both give sample key 'a_b'"):
        read_source(tmp_path / "src")


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        read_source(tmp_path / "empty")


def test_symlink_loop_and_broken_link(tmp_path: Path) -> None:
    put(tmp_path / "src/a/x.jpg")
    os.symlink(tmp_path / "src", tmp_path / "src/a/loop")
    with pytest.raises(DataError, match=r"src/a/loop is a symlink loop"):
        read_source(tmp_path / "src")
    (tmp_path / "src/a/loop").unlink()
    os.symlink(tmp_path / "gone.jpg", tmp_path / "src/a/dead.jpg")
    with pytest.raises(DataError, match=r"dead.jpg is a broken link"):
        read_source(tmp_path / "src")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file(tmp_path: Path) -> None:
    put(tmp_path / "src/x.jpg").chmod(0)
    with pytest.raises(DataError, match=r"cannot read .*x.jpg"):
        read_source(tmp_path / "src")


def test_tar_source_groups_members_and_reads_labels(tmp_path: Path) -> None:
    tars = tmp_path / "tars"
    tars.mkdir()
    with tarfile.open(tars / "a-000000.tar", "w") as tar:
        for name, data in [
            ("s1.jpg", jpeg()),
            ("s1.cls", b"3"),
            ("s2.json", b"{}"),
            ("s2.cls", b"1"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = read_source(tars)
    assert source.kind == "webdataset"
    assert source.classes == ["0", "1", "2", "3"]
    assert [(i.key, i.label, i.size) for i in source.items] == [("s1", 3, len(jpeg()))]
    assert [r.origin for r in source.rejected] == ["a-000000.tar:s2"]


def noise_jpeg(seed: int) -> bytes:
    """A 24×24 JPEG of noise: a few KB that gzip cannot shrink."""
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_tar(path: Path, samples: int, first: int = 0) -> list[tarfile.TarInfo]:
    """`s{n}.jpg` + `s{n}.cls` per sample (tarfile, plain or gz by name); returns the members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for n in range(first, first + samples):
            for name, data in [(f"s{n}.jpg", noise_jpeg(n)), (f"s{n}.cls", str(n % 3).encode())]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        return tar.getmembers()


def test_tar_gz_and_tgz_read_like_a_tar(tmp_path: Path) -> None:
    (tmp_path / "wds").mkdir()
    for number, name in enumerate(["a.tar", "b.tar.gz", "c.tgz"]):
        with wds.TarWriter(str(tmp_path / "wds" / name)) as sink:
            for n in range(3 * number, 3 * number + 3):
                sink.write({"__key__": f"s{n}", "jpg": noise_jpeg(n), "cls": n % 2})
    source = read_source(tmp_path / "wds")
    assert source.kind == "webdataset" and source.classes == ["0", "1"]
    assert [(i.key, i.label) for i in source.items] == [(f"s{n}", n % 2) for n in range(9)]
    assert [i.origin for i in source.items][3:5] == ["b.tar.gz:s3", "b.tar.gz:s4"]
    expected = [noise_jpeg(n) for n in range(9)]
    assert list(read_items(source.items)) == expected  # one forward pass per .tar.gz
    assert [read_bytes(i) for i in reversed(source.items)] == expected[::-1]  # any order
    single = read_source(tmp_path / "wds/c.tgz")
    assert [i.key for i in single.items] == ["s6", "s7", "s8"]
    assert read_bytes(single.items[2]) == noise_jpeg(8)


Damage = Callable[[list[tarfile.TarInfo], bytes], bytes]
"""Damage done to a tar's bytes, knowing its members."""


def cut_in_member(members: list[tarfile.TarInfo], data: bytes) -> bytes:
    s2 = next(m for m in members if m.name == "s2.jpg")
    return data[: s2.offset_data + 100]


def cut_in_header(members: list[tarfile.TarInfo], data: bytes) -> bytes:
    return data[: next(m for m in members if m.name == "s2.jpg").offset + 300]


def corrupt_header(members: list[tarfile.TarInfo], data: bytes) -> bytes:
    offset = next(m for m in members if m.name == "s2.jpg").offset
    return data[:offset] + b"\x07" * 100 + data[offset + 100 :]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (cut_in_member, r"member s2.jpg is cut short \(the file ends at byte \d+\)"),
        (cut_in_header, r"cut short inside a header after member s1.cls \(byte \d+\)"),
        (corrupt_header, r"unreadable header after member s1.cls \(byte \d+\); the members after"),
    ],
)
def test_a_damaged_tar_keeps_the_samples_before_the_damage(
    tmp_path: Path, damage: Damage, message: str
) -> None:
    write_tar(tmp_path / "wds/a.tar", 2, first=10)
    members = write_tar(tmp_path / "wds/b.tar", 4)
    bad = tmp_path / "wds/b.tar"
    bad.write_bytes(damage(members, bad.read_bytes()))
    write_tar(tmp_path / "wds/c.tar.gz", 2, first=20)
    source = read_source(tmp_path / "wds")
    assert [i.key for i in source.items] == ["s10", "s11", "s0", "s1", "s20", "s21"]
    assert [read_bytes(i) for i in source.items] == [noise_jpeg(n) for n in (10, 11, 0, 1, 20, 21)]
    assert [d.origin for d in source.damaged] == ["b.tar"]
    assert re.search(message + r".*; kept 2 samples before it", source.damaged[0].reason)
    with pytest.raises(DataError, match=r"wds/b.tar is a damaged tar: " + message):
        read_source(tmp_path / "wds", strict=True)


def test_a_cut_tar_gz_keeps_the_samples_before_the_cut(tmp_path: Path) -> None:
    write_tar(tmp_path / "wds/a.tar.gz", 6)
    data = (tmp_path / "wds/a.tar.gz").read_bytes()
    (tmp_path / "wds/a.tar.gz").write_bytes(data[: len(data) // 2])
    source = read_source(tmp_path / "wds")
    keys = [i.key for i in source.items]
    assert keys and keys == [f"s{n}" for n in range(len(keys))] and len(keys) < 3
    assert [read_bytes(i) for i in source.items] == [noise_jpeg(n) for n in range(len(keys))]
    reason = source.damaged[0].reason
    assert "Compressed file ended" in reason and "of the uncompressed tar" in reason
    with pytest.raises(DataError, match=r"a.tar.gz is a damaged tar: Compressed file ended"):
        read_source(tmp_path / "wds", strict=True)


def test_a_file_that_is_no_tar_is_listed_whole(tmp_path: Path) -> None:
    write_tar(tmp_path / "wds/a.tar", 1)
    (tmp_path / "wds/b.tar").write_bytes(b"not a tar at all" * 100)
    (tmp_path / "wds/c.tgz").write_bytes(b"")
    source = read_source(tmp_path / "wds")
    assert [i.key for i in source.items] == ["s0"]
    assert [(d.origin, d.reason.split(";")[0]) for d in source.damaged] == [
        ("b.tar", "damaged tar: not readable as a tar: invalid header"),
        ("c.tgz", "damaged tar: not readable as a tar: empty file"),
    ]


def test_links_devices_and_escaping_names_are_refused_never_extracted(tmp_path: Path) -> None:
    tar_path = tmp_path / "wds/t.tar"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w") as tar:
        for name, kind, target in [
            ("s1.jpg", tarfile.REGTYPE, ""),
            ("../evil.jpg", tarfile.REGTYPE, ""),
            ("/abs/evil2.jpg", tarfile.REGTYPE, ""),
            ("sub", tarfile.DIRTYPE, ""),
            ("link.jpg", tarfile.SYMTYPE, "/etc/passwd"),
            ("hard.jpg", tarfile.LNKTYPE, "s1.jpg"),
            ("dev.jpg", tarfile.CHRTYPE, ""),
            ("pipe.jpg", tarfile.FIFOTYPE, ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            data = jpeg() if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = read_source(tar_path)
    assert [i.key for i in source.items] == ["s1"]
    assert {r.origin: r.reason.split(",")[0].split(" (")[0] for r in source.rejected} == {
        "t.tar:../evil.jpg": "an absolute name or one with '..': refused",
        "t.tar:/abs/evil2.jpg": "an absolute name or one with '..': refused",
        "t.tar:link.jpg": "a symbolic link",
        "t.tar:hard.jpg": "a hard link",
        "t.tar:dev.jpg": "a device or FIFO",
        "t.tar:pipe.jpg": "a device or FIFO",
    }
    report = shard_images(tar_path, tmp_path / "out", ShardConfig(workers=1))
    assert report.manifest.num_samples == 1 and report.rejected == 6
    rows = [json.loads(line) for line in (tmp_path / "out/rejected.jsonl").read_text().splitlines()]
    assert {row["file"] for row in rows} == {r.origin for r in source.rejected}
    assert not list(tmp_path.rglob("evil*")) and not Path("/abs").exists()
