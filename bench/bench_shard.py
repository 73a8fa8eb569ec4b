"""Benchmark `ns shard` against a plain `webdataset.ShardWriter` loop over the same JPEG corpus.

The corpus: photos of about 500×375 cut from scikit-image's sample photos by random crops and
rescales (JPEG q90, 10 class folders), built once and cached. Each method runs with 1 and N
workers (the plain loops split the file list into N processes with a ShardWriter each); the page
cache is warmed first. `plain + decode` also opens and decodes every image with PIL (what a
writer that verifies images must do), the fair baseline for `ns shard`, which verifies them all;
`--verify structure` checks headers and file structure only.

    uv run --frozen python bench/bench_shard.py --files 2000 --workers 2
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image
from skimage import data, transform

from ns_data.images.verify import Verify
from ns_data.ingest.pipeline import ShardConfig, shard_images

SHARD_SIZE = 1000
"""Samples per `ns shard` tar: several shards, so that the write phase has work for every worker
(the plain loops write one tar per worker)."""
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def build_corpus(root: Path, files: int, seed: int = 0) -> list[tuple[Path, int]]:
    """Write `files` JPEGs of about 500×375 under `root/classNN/` (skipped when present)."""
    existing = sorted(root.glob("class*/*.jpg"))
    if len(existing) != files:
        shutil.rmtree(root, ignore_errors=True)
        rng = np.random.default_rng(seed)
        photos = [np.asarray(getattr(data, name)())[..., :3] for name in PHOTOS]
        for i in range(files):
            photo = photos[i % len(photos)]
            scale = rng.uniform(0.6, 1.6)
            big = transform.rescale(photo, scale, channel_axis=2, anti_aliasing=False)
            height, width = min(375, big.shape[0]), min(500, big.shape[1])
            y = rng.integers(0, big.shape[0] - height + 1)
            x = rng.integers(0, big.shape[1] - width + 1)
            crop = (big[y : y + height, x : x + width] * 255).astype(np.uint8)
            path = root / f"class{i % 10:02d}" / f"img{i:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(path, quality=90)
        existing = sorted(root.glob("class*/*.jpg"))
    return [(p, int(p.parent.name[5:])) for p in existing]


def plain_loop(job: tuple[list[tuple[Path, int]], str, bool]) -> None:
    """One baseline process: read each file (optionally decode it), write it with ShardWriter."""
    items, pattern, decode = job
    with wds.ShardWriter(pattern, maxcount=10_000, maxsize=1 << 30, verbose=0) as sink:
        for path, label in items:
            jpeg = path.read_bytes()
            if decode:
                with Image.open(io.BytesIO(jpeg)) as image:
                    image.load()
            sink.write({"__key__": f"{label}/{path.stem}", "jpg": jpeg, "cls": label})


def run_plain(items: list[tuple[Path, int]], out: Path, workers: int, decode: bool) -> None:
    parts = [(items[i::workers], str(out / f"w{i}-%06d.tar"), decode) for i in range(workers)]
    if workers == 1:
        plain_loop(parts[0])
        return
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(plain_loop, parts))


def timed(fn: Callable[[], None], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--corpus", type=Path, default=Path(tempfile.gettempdir()) / "ns-bench-corpus"
    )
    parser.add_argument("--repeat", type=int, default=2, help="Best of this many runs.")
    args = parser.parse_args()
    items = build_corpus(args.corpus, args.files)
    megabytes = sum(len(p.read_bytes()) for p, _ in items) / 1e6  # also warms the page cache
    out = Path(tempfile.mkdtemp(prefix="ns-bench-out-"))
    print(f"{len(items)} JPEGs, {megabytes:.1f} MB, {os.cpu_count()} cores\n")
    print("| method | workers | seconds | images/s | MB/s | vs plain loop |")
    print("|---|---|---|---|---|---|")
    for workers in sorted({1, args.workers}):
        methods: dict[str, Callable[[], None]] = {
            "plain ShardWriter loop": lambda w=workers: run_plain(items, out, w, decode=False),
            "plain loop + PIL decode": lambda w=workers: run_plain(items, out, w, decode=True),
            "ns shard": lambda w=workers: _ns_shard(args.corpus, out, w, "decode"),
            "ns shard --verify structure": lambda w=workers: _ns_shard(
                args.corpus, out, w, "structure"
            ),
        }
        baseline = 0.0
        for name, fn in methods.items():
            seconds = min(timed(fn, out) for _ in range(args.repeat))
            baseline = baseline or seconds
            print(
                f"| {name} | {workers} | {seconds:.2f} | {len(items) / seconds:,.0f} "
                f"| {megabytes / seconds:,.1f} | {baseline / seconds:.2f}× |"
            )
    shutil.rmtree(out, ignore_errors=True)


def _ns_shard(corpus: Path, out: Path, workers: int, verify: Verify) -> None:
    config = ShardConfig(workers=workers, verify=verify, max_count=SHARD_SIZE)
    shard_images(corpus, out / "set", config)


if __name__ == "__main__":
    main()
