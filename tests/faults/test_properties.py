"""Property-based round trips (hypothesis): what is written is what every reader reads back.

- `ns shard` on image trees with arbitrary names (unicode, dots, spaces, deep paths), sizes,
  formats, classes and shard sizes, read back by ns_data's `ShardSet`, the `webdataset` library
  and DALI's `fn.readers.webdataset` (skipped with a reason when DALI cannot be imported).
- `ShardSetWriter` with arbitrary valid keys (deep paths), labels and roll-over sizes.
- Pseudo-label files: arbitrary ids, k, classes, probabilities and teacher metadata.

Few examples each (`max_examples` 15-25, no deadline): they run on every `make test`. The
selection plan's properties are in tests/ns_data/test_selection.py.
"""

from __future__ import annotations

import io
import json
import re
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from ns_data.errors import DataError
from ns_data.ingest.pipeline import ShardConfig, shard_images
from ns_data.ingest.sources import sample_key
from ns_data.labels.store import (
    PseudoLabels,
    TeacherInfo,
    labels_file,
    read_teacher,
    read_top1,
    write_shard_labels,
)
from ns_data.loading.loader import dali_available
from ns_data.shards.manifest import Manifest
from ns_data.shards.reader import ShardSet
from ns_data.shards.writer import ShardSetWriter, is_valid_key

FEW = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# File names as people write them: letters of any script, digits, dots, spaces, dashes. Not
# "/" or NUL (not names), no leading dot (hidden files are skipped by design).
_CHARS = st.characters(
    codec="utf-8",
    categories=["L", "N"],
    include_characters=". -_()[]+,#é日ß",
    exclude_characters="/\x00",
)
NAME = st.text(_CHARS, min_size=1, max_size=12).filter(lambda s: not s.startswith("."))


@st.composite
def image(draw: st.DrawFn) -> tuple[bytes, str]:
    width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    fmt = draw(st.sampled_from(["JPEG", "PNG"]))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue(), "jpg" if fmt == "JPEG" else "png"


@st.composite
def image_tree(draw: st.DrawFn) -> dict[str, bytes]:
    """Relative path -> bytes: 1-3 class folders, each with 1-4 images up to 3 folders deep."""
    classes = draw(st.lists(NAME, min_size=1, max_size=3, unique=True))
    tree: dict[str, bytes] = {}
    for name in classes:
        for _ in range(draw(st.integers(1, 4))):
            folders = draw(st.lists(NAME, max_size=3))
            data, ext = draw(image())
            stem = draw(NAME)
            tree["/".join([name, *folders, f"{stem}.{ext}"])] = data
    return tree


def _dali_samples(tars: list[str], indexes: list[str], count: int) -> list[tuple[bytes, int]]:
    """(image bytes, label) of every sample, in order, as DALI's webdataset reader gives them."""
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipeline():  # type: ignore[no-untyped-def]
        images, labels = fn.readers.webdataset(
            paths=tars, index_paths=indexes, ext=["jpg;png", "cls"], name="reader"
        )
        return images, labels

    pipe = pipeline()
    pipe.build()
    found = []
    for _ in range(count):
        images, labels = pipe.run()
        found.append((bytes(np.array(images[0])), int(bytes(np.array(labels[0])))))
    return found


@contextmanager
def sharded(tree: dict[str, bytes], max_count: int) -> Iterator[tuple[Path, list[str], dict]]:
    """`tree` written as files and sharded: (the set, its files in sample order, their bytes).
    Two names that give one key are refused naming both files; the later names are then dropped
    and the rest sharded."""
    with tempfile.TemporaryDirectory() as work:
        source, out = Path(work) / "src", Path(work) / "set"
        written: dict[str, bytes] = {}
        folders: set[str] = set()
        for path, data in tree.items():
            parents = {"/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)}
            if path in folders or parents & written.keys():
                continue  # a file and a folder of one name: not a tree
            target = source / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written[path], folders = data, folders | parents
        by_key: dict[str, str] = {}
        for path in sorted(written):
            by_key.setdefault(sample_key(path), path)
        if len(by_key) < len(written):  # two names give one key: refused, naming both files
            with pytest.raises(DataError, match="both give sample key"):
                shard_images(source, out, ShardConfig(workers=1))
            for path in set(written) - set(by_key.values()):  # keep the first name of each key
                (source / path).unlink()
                del written[path]
        order = sorted(written)
        shard_images(source, out, ShardConfig(max_count=max_count, workers=1))
        yield out, order, written


def _labels(order: list[str]) -> list[int]:
    classes = sorted({path.split("/", 1)[0] for path in order})
    return [classes.index(path.split("/", 1)[0]) for path in order]


@FEW
@given(tree=image_tree(), max_count=st.integers(1, 5))
def test_shard_round_trip_through_ns_data_and_webdataset(
    tree: dict[str, bytes], max_count: int
) -> None:
    with sharded(tree, max_count) as (out, order, written):
        keys, labels = [sample_key(path) for path in order], _labels(order)
        assert all(is_valid_key(key) for key in keys), keys
        manifest = Manifest.load(out)
        assert manifest.num_samples == len(order) and manifest.class_counts == [
            labels.count(c) for c in range(len(manifest.classes))
        ]
        assert all(s.count <= max_count for s in manifest.shards)

        shards = ShardSet(out)  # ns_data's reader
        assert [shards.read_image(row) for row in range(len(order))] == [written[p] for p in order]
        assert shards.labels.tolist() == labels

        tars = [str(out / s.tar) for s in manifest.shards]
        samples = list(wds.WebDataset(tars, shardshuffle=False, empty_check=False))
        assert [s["__key__"] for s in samples] == keys
        assert [s.get("jpg", s.get("png")) for s in samples] == [written[p] for p in order]
        assert [int(s["cls"]) for s in samples] == labels


@pytest.mark.dali
@pytest.mark.skipif(not dali_available(), reason="nvidia.dali cannot be imported")
@settings(FEW, max_examples=15)
@given(tree=image_tree(), max_count=st.integers(1, 5))
def test_shard_round_trip_through_dali(tree: dict[str, bytes], max_count: int) -> None:
    with sharded(tree, max_count) as (out, order, written):
        manifest = Manifest.load(out)
        tars = [str(out / s.tar) for s in manifest.shards]
        indexes = [str(out / s.index) for s in manifest.shards]
        expected = [(written[p], label) for p, label in zip(order, _labels(order), strict=True)]
        assert _dali_samples(tars, indexes, len(order)) == expected


KEY_PART = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
KEY = st.lists(KEY_PART, min_size=1, max_size=6).map("/".join).filter(is_valid_key)


@FEW
@given(
    samples=st.lists(st.tuples(KEY, image(), st.integers(0, 6)), min_size=1, max_size=12),
    max_count=st.integers(1, 4),
    max_bytes=st.integers(512, 8192),
)
def test_writer_round_trip_with_deep_keys(
    samples: list[tuple[str, tuple[bytes, str], int]], max_count: int, max_bytes: int
) -> None:
    unique = {key: (data, label) for key, data, label in samples}
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "set"
        with ShardSetWriter(
            out, "set", classes=[str(c) for c in range(7)], max_count=max_count, max_bytes=max_bytes
        ) as writer:
            for key, ((data, ext), label) in unique.items():
                size = Image.open(io.BytesIO(data)).size
                writer.add(key, data, ext, label=label, size=size)
        shards = ShardSet(out)
        expected = list(unique.values())
        assert [shards.read_image(r) for r in range(len(shards))] == [d for (d, _), _ in expected]
        assert shards.labels.tolist() == [label for _, label in expected]
        tars = [str(out / s.tar) for s in Manifest.load(out).shards]
        keys = [s["__key__"] for s in wds.WebDataset(tars, shardshuffle=False, empty_check=False)]
        assert keys == list(unique)


def test_keys_of_non_latin_folders_are_read_by_webdataset(tmp_path: Path) -> None:
    """Folders in any script keep distinct keys that webdataset reads (`______/a` was one it
    skips as metadata, and one for every 6-letter name); the classes keep their spelling."""
    folders = ["Ελλάδα", "собака", "кошка", "日本", "café", "cafe", "__meta__", "cat"]
    for folder in folders:
        (tmp_path / "src" / folder).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "src" / folder / "a.jpg")
    shard_images(tmp_path / "src", tmp_path / "set", ShardConfig(workers=1))
    assert Manifest.load(tmp_path / "set").classes == sorted(folders)
    tars = [str(p) for p in sorted((tmp_path / "set").glob("*.tar"))]
    keys = [s["__key__"] for s in wds.WebDataset(tars, shardshuffle=False)]
    assert keys == [sample_key(f"{folder}/a.jpg") for folder in sorted(folders)]
    assert len(set(keys)) == len(folders) and all(is_valid_key(key) for key in keys)
    assert sample_key("café/a.jpg") == sample_key("cafe\u0301/a.jpg")  # NFC and NFD spellings
    assert re.fullmatch(r"cafe-[0-9a-f]{8}/a", sample_key("café/a.jpg"))
    assert sample_key("cafe/a.b.jpg") == "cafe/a_b"  # ASCII names keep their keys


@FEW
@example(key="__meta__/a")
@given(key=st.text(min_size=1, max_size=10))
def test_writer_refuses_keys_it_cannot_store(key: str) -> None:
    """A key with a dot, a space or any other character outside [A-Za-z0-9_-/], or whose first
    folder reads `__NAME__` (webdataset skips it), is refused."""
    assume(not is_valid_key(key))
    with tempfile.TemporaryDirectory() as work:
        writer = ShardSetWriter(Path(work) / "set", "set", classes=None)
        with pytest.raises(DataError, match="may only hold letters, digits"):
            writer.add(key, b"", "jpg", size=(1, 1))


@st.composite
def labels_set(draw: st.DrawFn) -> tuple[TeacherInfo, list[tuple[int, np.ndarray, np.ndarray]]]:
    """A teacher and its labels of 1-3 shards: (first id, top-k classes, top-k probabilities)."""
    classes = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=12, unique=True))
    k = draw(st.integers(1, len(classes)))
    teacher = TeacherInfo(
        checkpoint=draw(st.text(max_size=30)),
        model_name=draw(st.sampled_from(["efficientnet_b0", "tinynet_e"])),
        class_names=classes,
        temperature=draw(st.floats(0.1, 10)),
        topk=k,
        teacher_id=draw(st.text(string.hexdigits, min_size=16, max_size=16)),
    )
    first = draw(st.integers(0, 2**40))
    shards = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 30))  # a shard holds one sample or more
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        top = np.array([rng.permutation(len(classes))[:k] for _ in range(n)]).reshape(n, k)
        probs = np.sort(rng.dirichlet(np.ones(len(classes)), n)[:, :k], axis=1)[:, ::-1]
        shards.append((first, top.astype(np.int32), probs.astype(np.float16)))
        first += n
    return teacher, shards


@FEW
@given(labels=labels_set())
def test_pseudo_labels_round_trip(
    labels: tuple[TeacherInfo, list[tuple[int, np.ndarray, np.ndarray]]],
) -> None:
    teacher, shards = labels
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        names = [f"u-{number:06d}.tar" for number in range(len(shards))]
        for name, (first, top, probs) in zip(reversed(names), reversed(shards), strict=True):
            ids = np.arange(first, first + len(top), dtype=np.int64)
            write_shard_labels(labels_file(folder, name), ids, top, probs, teacher)
        for name, (first, top, probs) in zip(names, shards, strict=True):
            path = labels_file(folder, name)
            assert read_teacher(path) == teacher
            ids, top1, prob1 = read_top1(path)
            assert ids.tolist() == list(range(first, first + len(top)))
            assert np.array_equal(top1, top[:, 0]) and np.array_equal(prob1, probs[:, 0])
        store = PseudoLabels(folder, tars=names)
        everything = (np.concatenate([s[i] for s in shards]) for i in (1, 2))
        top, probs = everything
        assert store.teacher == teacher and len(store) == len(top)
        assert np.array_equal(store.topk_class, top) and np.array_equal(store.topk_prob, probs)
        assert json.loads(json.dumps(store.teacher.class_names)) == teacher.class_names
        if len(top):
            dense = store.dense(store.sample_id).numpy()
            rows = np.arange(len(top))
            assert np.allclose(dense.sum(1)[probs.astype(np.float32).sum(1) > 0], 1, atol=1e-5)
            assert (dense[rows, top[:, 0]] >= dense.max(1) - 1e-6)[probs[:, 0] > 0].all()
