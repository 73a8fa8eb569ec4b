"""Reading `ns shard` sources: order, keys, labels, and one-line errors for bad input."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from ns_data.errors import DataError
from ns_data.sources import read_source, sample_key


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
    assert sample_key("./x/café photo.JPEG") == "x/caf__photo"
    assert sample_key("noext") == "noext"


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
