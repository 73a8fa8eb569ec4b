"""`shard_images` end to end: format, determinism, rejects, resume, tar/webdataset/DALI interop."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from ns_data.errors import DataError
from ns_data.images.verify import UnusableImage, check_image
from ns_data.ingest.pipeline import ShardConfig, shard_images
from ns_data.shards.describe import describe_shard_set
from ns_data.shards.manifest import Manifest
from ns_data.shards.reader import ShardSet

from .conftest import bogus_sampling


def image_bytes(width: int, height: int, seed: int, fmt: str = "JPEG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An ImageFolder tree: 2 classes, 13 good images (one PNG, one dotted name), 3 bad files."""
    root = tmp_path / "src"
    for i in range(12):
        path = root / ("cat" if i % 2 else "dog") / f"img{i:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(8 + i, 6 + i, i))
    (root / "cat/photo.v2.png").write_bytes(image_bytes(10, 10, 99, "PNG"))
    (root / "cat/empty.jpg").write_bytes(b"")
    (root / "dog/notes.txt").write_text("not an image")
    (root / "dog/cut.jpg").write_bytes(image_bytes(16, 16, 7)[:200])
    return root


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def shard_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_labeled_set_format_and_manifest(tree: Path, tmp_path: Path) -> None:
    report = shard_images(
        tree, tmp_path / "out", ShardConfig(prefix="train", max_count=5, workers=1)
    )
    manifest = Manifest.load(tmp_path / "out")
    assert report.rejected == 3 and report.shards_written == 3
    assert [s.tar for s in manifest.shards] == [f"train-00000{i}.tar" for i in range(3)]
    assert [(s.count, s.first_id) for s in manifest.shards] == [(5, 0), (5, 5), (3, 10)]
    assert manifest.classes == ["cat", "dog"] and manifest.class_counts == [7, 6]
    assert manifest.image_stats is not None and manifest.image_stats.max_width == 19
    assert manifest.source.startswith("imagefolder:") and manifest.ns_version
    rejected = [
        json.loads(line) for line in (tmp_path / "out/rejected.jsonl").read_text().splitlines()
    ]
    assert {r["file"] for r in rejected} == {"cat/empty.jpg", "dog/cut.jpg", "dog/notes.txt"}
    assert all(r["reason"] for r in rejected)
    names = tar_names(tmp_path / "out/train-000000.tar")
    assert names[:4] == ["cat/img01.jpg", "cat/img01.cls", "cat/img03.jpg", "cat/img03.cls"]
    all_names = [n for s in manifest.shards for n in tar_names(tmp_path / "out" / s.tar)]
    assert "cat/photo_v2.png" in all_names
    shards = ShardSet(tmp_path / "out")
    assert len(shards) == 13 and shards.read_image(0) == (tree / "cat/img01.jpg").read_bytes()
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        ["manifest.json", "rejected.jsonl", "labels.npy"]
        + [f"train-00000{i}.{e}" for i in range(3) for e in ("tar", "idx")]
    )


def test_label_column_matches_the_cls_members(tree: Path, tmp_path: Path) -> None:
    """Labels come from one read of `labels.npy`; sets without it read each `.cls` member."""
    out = tmp_path / "out"
    shard_images(tree, out, ShardConfig(max_count=5, workers=1))
    whole = ShardSet(out)
    from_members = [whole.read_label(row) for row in range(len(whole))]
    assert whole.labels.tolist() == from_members and set(from_members) == {0, 1}
    part = ShardSet(out, shards=[1, 2])
    assert part.labels.tolist() == from_members[5:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels_file"] == "labels.npy"
    (out / "manifest.json").write_text(json.dumps({**manifest, "labels_file": None}))
    assert ShardSet(out).labels.tolist() == from_members
    (out / "manifest.json").write_text(json.dumps(manifest))
    np.save(out / "labels.npy", np.zeros(4, dtype=np.int32))
    with pytest.raises(DataError, match=r"labels\.npy holds int32 \(4,\), not one class per "):
        _ = ShardSet(out).labels
    (out / "labels.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"labels\.npy is unreadable .*rebuild the set"):
        _ = ShardSet(out).labels


def test_structure_verify_skips_the_decode(tree: Path, tmp_path: Path) -> None:
    """verify="structure" rejects empty, cut and non-image files like the decode check, but lets
    a JPEG that only a decoder rejects through (the loaders skip such samples when they meet them)."""
    damaged = bogus_sampling(image_bytes(64, 48, 0))
    assert check_image(damaged, verify="structure").width == 64
    with pytest.raises(UnusableImage, match="does not decode"):
        check_image(damaged)
    (tree / "cat/damaged.jpg").write_bytes(damaged)
    decoded = shard_images(tree, tmp_path / "decode", ShardConfig(workers=1))
    structured = shard_images(tree, tmp_path / "structure", ShardConfig(verify="structure"))
    assert (decoded.rejected, structured.rejected) == (4, 3)
    assert structured.manifest.num_samples == decoded.manifest.num_samples + 1
    assert structured.manifest.extra["options"]["verify"] == "structure"
    with pytest.raises(DataError, match="verify must be one of decode, structure"):
        ShardConfig(verify="none")  # type: ignore[arg-type]


def test_same_input_same_bytes_for_any_worker_count(tree: Path, tmp_path: Path) -> None:
    one = shard_images(tree, tmp_path / "a", ShardConfig(prefix="s", max_count=4, workers=1))
    two = shard_images(tree, tmp_path / "b", ShardConfig(prefix="s", max_count=4, workers=2))
    assert shard_files(tmp_path / "a") == shard_files(tmp_path / "b")
    assert one.manifest == two.manifest


def test_max_bytes_rolls_shards(tree: Path, tmp_path: Path) -> None:
    shard_images(tree, tmp_path / "out", ShardConfig(max_bytes=20_480, workers=1))
    manifest = Manifest.load(tmp_path / "out")
    assert len(manifest.shards) > 1
    for shard in manifest.shards:
        assert (tmp_path / "out" / shard.tar).stat().st_size == shard.bytes <= 20_480


def test_index_matches_dali_wds2idx(tree: Path, tmp_path: Path) -> None:
    wds2idx = Path(sys.executable).parent / "wds2idx"
    if not wds2idx.exists():
        pytest.skip("wds2idx (from nvidia-dali) is not installed")
    shard_images(tree, tmp_path / "out", ShardConfig(max_count=6, workers=1))
    for shard in Manifest.load(tmp_path / "out").shards:
        theirs = tmp_path / f"{shard.tar}.wds2idx"
        subprocess.run(
            [wds2idx, tmp_path / "out" / shard.tar, theirs], check=True, capture_output=True
        )
        assert (tmp_path / "out" / shard.index).read_text() == theirs.read_text()


@pytest.mark.dali
def test_irregular_or_short_index_is_refused(tree: Path, tmp_path: Path) -> None:
    shard_images(tree, tmp_path / "out", ShardConfig(prefix="s", max_count=20, workers=1))
    index = tmp_path / "out/s-000000.idx"
    lines = index.read_text().splitlines()
    index.write_text("\n".join([lines[0], lines[1].rsplit(" ", 4)[0], *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"s-000000\.idx: samples differ in their components"):
        ShardSet(tmp_path / "out")
    index.write_text("\n".join(lines[:5]) + "\n")
    with pytest.raises(DataError, match="lists fewer samples than its header says"):
        ShardSet(tmp_path / "out")


def test_dali_reads_every_sample(tree: Path, tmp_path: Path) -> None:
    dali = pytest.importorskip("nvidia.dali")
    from nvidia.dali import fn

    shard_images(tree, tmp_path / "out", ShardConfig(max_count=6, workers=1))
    manifest = Manifest.load(tmp_path / "out")
    paths = [str(tmp_path / "out" / s.tar) for s in manifest.shards]
    indexes = [str(tmp_path / "out" / s.index) for s in manifest.shards]

    @dali.pipeline_def(batch_size=13, num_threads=1, device_id=None)
    def pipeline():  # type: ignore[no-untyped-def]
        images, labels = fn.readers.webdataset(
            paths=paths, index_paths=indexes, ext=["jpg;png", "cls"], name="reader"
        )
        return fn.decoders.image(images, device="cpu"), labels

    pipe = pipeline()
    pipe.build()
    assert pipe.epoch_size("reader") == 13
    images, labels = pipe.run()
    assert len(images) == 13
    assert sorted(int(bytes(np.array(labels[i]))) for i in range(13)) == [0] * 7 + [1] * 6


def test_readable_by_webdataset_and_tar(tree: Path, tmp_path: Path) -> None:
    shard_images(tree, tmp_path / "out", ShardConfig(max_count=100, workers=1))
    tar = tmp_path / "out/out-000000.tar"
    samples = list(wds.WebDataset(str(tar), shardshuffle=False))
    assert len(samples) == 13
    first = samples[0]
    assert first["__key__"] == "cat/img01" and first["cls"] == b"0"
    assert first["jpg"] == (tree / "cat/img01.jpg").read_bytes()
    listing = subprocess.run(["tar", "tf", tar], check=True, capture_output=True, text=True)
    assert len(listing.stdout.split()) == 26


def test_webdataset_shardwriter_set_as_input(tmp_path: Path) -> None:
    (tmp_path / "wds").mkdir()
    with wds.ShardWriter(str(tmp_path / "wds/part-%03d.tar"), maxcount=3, verbose=0) as sink:
        for i in range(7):
            sink.write({"__key__": f"sample{i:04d}", "jpg": image_bytes(8, 8, i), "cls": i % 3})
        sink.write({"__key__": "broken", "jpg": b"\xff\xd8junk", "cls": 0})
    shard_images(tmp_path / "wds", tmp_path / "out", ShardConfig(max_count=4, workers=2))
    manifest = Manifest.load(tmp_path / "out")
    assert manifest.num_samples == 7 and manifest.classes == ["0", "1", "2"]
    assert manifest.class_counts == [3, 2, 2] and manifest.extra["rejected"] == 1
    shards = ShardSet(tmp_path / "out")
    assert shards.read_image(6) == image_bytes(8, 8, 6) and shards.read_label(6) == 0
    # re-sharding an ns set keeps its class names and bytes
    shard_images(tmp_path / "out", tmp_path / "again", ShardConfig(prefix="out", max_count=4))
    assert shard_files(tmp_path / "again").keys() == shard_files(tmp_path / "out").keys()


def test_reencode_only_larger_images(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.jpg").write_bytes(image_bytes(64, 40, 1))
    (src / "small.jpg").write_bytes(image_bytes(20, 10, 2))
    shard_images(src, tmp_path / "out", ShardConfig(max_side=32, quality=80, workers=1))
    shards = ShardSet(tmp_path / "out")
    assert Image.open(io.BytesIO(shards.read_image(0))).size == (32, 20)
    assert shards.read_image(1) == (src / "small.jpg").read_bytes()
    assert Manifest.load(tmp_path / "out").extra["options"]["max_side"] == 32


def test_fsspec_url_output_and_describe(tree: Path, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/out"
    shard_images(tree, url, ShardConfig(max_count=5, workers=1))
    summary = describe_shard_set(url)
    assert (summary.samples, summary.shards, summary.rejected) == (13, 3, 3)
    assert summary.class_histogram == {"cat": 7, "dog": 6}
    assert summary.bytes == sum(p.stat().st_size for p in (tmp_path / "out").glob("*.tar"))
    assert "13 samples in 3 shards" in summary.lines()[0]
    (tmp_path / "out/out-000001.tar").unlink()
    with pytest.raises(DataError, match=r"out-000001.tar is missing"):
        describe_shard_set(tmp_path / "out")


def test_existing_set_needs_overwrite(tree: Path, tmp_path: Path) -> None:
    shard_images(tree, tmp_path / "out", ShardConfig(max_count=5, workers=1))
    with pytest.raises(DataError, match="already holds a shard set; pass --overwrite"):
        shard_images(tree, tmp_path / "out", ShardConfig(max_count=5, workers=1))
    report = shard_images(
        tree, tmp_path / "out", ShardConfig(max_count=20, overwrite=True, workers=1)
    )
    assert len(report.manifest.shards) == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == ["out-000000.tar"]


def test_bad_outputs_write_nothing(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is inside the source"):
        shard_images(tree, tree / "shards")
    assert not (tree / "shards").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy/keep.txt").write_text("mine")
    with pytest.raises(DataError, match="is not empty and holds no shard set"):
        shard_images(tree, tmp_path / "busy")
    with pytest.raises(DataError, match="does not exist"):
        shard_images(tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="max_count must be a positive integer"):
        ShardConfig(max_count=0)


def test_all_rejected_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"no file of .* is a usable image \(a.jpg: not an image"):
        shard_images(tmp_path / "src", tmp_path / "out", ShardConfig(workers=1))
    assert not (tmp_path / "out/.ns-shard").exists()


_SLOW_RUN = """
import sys, time
from ns_data.ingest import pipeline as sharding
write = sharding.write_shard
def slow(job):
    time.sleep(0.15)
    return write(job)
sharding.write_shard = slow
config = sharding.ShardConfig(prefix="s", max_count=1, workers=1)
sharding.shard_images(sys.argv[1], sys.argv[2], config)
"""


def killed_run(tree: Path, out: Path) -> None:
    """Start a slowed-down run in a subprocess; SIGKILL it once 3 tars exist (2 marked done)."""
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(tree), str(out)])
    deadline = time.monotonic() + 30
    while len(list(out.glob("s-*.tar"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists() and list(out.glob("s-*.tar"))


def test_resume_after_kill_gives_identical_bytes(tree: Path, tmp_path: Path) -> None:
    config = ShardConfig(prefix="s", max_count=1, workers=1)
    shard_images(tree, tmp_path / "clean", config)
    killed_run(tree, tmp_path / "killed")
    report = shard_images(tree, tmp_path / "killed", config)
    assert report.shards_reused >= 2 and report.shards_written >= 1
    assert shard_files(tmp_path / "killed") == shard_files(tmp_path / "clean")


def test_resume_redoes_shards_of_changed_files(tree: Path, tmp_path: Path) -> None:
    config = ShardConfig(prefix="s", max_count=1, workers=1)
    killed_run(tree, tmp_path / "killed")
    (tree / "cat/img01.jpg").write_bytes(image_bytes(30, 30, 1234))
    report = shard_images(tree, tmp_path / "killed", config)
    assert report.shards_written == 13 - report.shards_reused >= 1
    shard_images(tree, tmp_path / "clean", config)
    assert shard_files(tmp_path / "killed") == shard_files(tmp_path / "clean")
    assert ShardSet(tmp_path / "killed").read_image(0) == image_bytes(30, 30, 1234)
