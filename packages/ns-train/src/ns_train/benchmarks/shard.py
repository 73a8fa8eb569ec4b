"""`ns shard` against a plain `webdataset.ShardWriter` loop over the same JPEG folder.

Each method runs with 1 and with `workers` processes (the plain loops split the file list into
one ShardWriter per process). `plain + PIL decode` also decodes every image, what a writer that
checks its images must do: the fair baseline for `ns shard`, which decodes them all by default;
`--verify structure` checks headers and file structure only. The files are read once first, so
every method finds them in the page cache.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Candidate, Metrics, rows_of

Items = list[tuple[Path, int]]


def run(ctx: Context) -> Section:
    corpus = ctx.corpus()
    items = [(p, int(p.parent.name[5:])) for p in sorted(corpus.images.glob("class*/*.jpg"))]
    megabytes = sum(len(p.read_bytes()) for p, _ in items) / 1e6  # also warms the page cache
    out = ctx.work / "shard"
    per_shard = ctx.sizes.shard_size
    candidates = []
    for workers in sorted({1, ctx.workers}):
        procs = f"{workers} worker" + ("s" if workers > 1 else "")
        plain = f"plain ShardWriter loop, {procs}"
        n, images = len(items), corpus.images
        candidates += [
            Candidate(plain, partial(_timed, out, n, _plain, items, workers, False)),
            Candidate(
                f"plain loop + PIL decode, {procs}",
                partial(_timed, out, n, _plain, items, workers, True),
                baseline=plain,
            ),
            Candidate(
                f"ns shard, {procs}",
                partial(_timed, out, n, _ns, images, workers, "decode", per_shard),
                baseline=plain,
            ),
            Candidate(
                f"ns shard --verify structure, {procs}",
                partial(_timed, out, n, _ns, images, workers, "structure", per_shard),
                baseline=plain,
            ),
        ]
    ctx.begin("shard")
    runs = ctx.rounds(candidates)
    shutil.rmtree(out, ignore_errors=True)
    return Section(
        "shard",
        "`ns shard` vs a plain webdataset.ShardWriter loop",
        {
            "images": len(items),
            "MB": round(megabytes, 1),
            "corpus": corpus.name,
            "samples per shard": per_shard,
        },
        rows_of(candidates, runs, {"images/s": "images/s"}),
    )


def _timed(out: Path, count: int, fn: Callable[..., None], *args: object) -> Metrics:
    """Images/s of `fn(out, *args)`, into an empty `out`."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    fn(out, *args)
    return {"images/s": count / (time.perf_counter() - started)}


def _plain(out: Path, items: Items, workers: int, decode: bool) -> None:
    parts = [(items[i::workers], str(out / f"w{i}-%06d.tar"), decode) for i in range(workers)]
    if workers == 1:
        _plain_loop(parts[0])
        return
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_plain_loop, parts))


def _plain_loop(job: tuple[Items, str, bool]) -> None:
    """One baseline process: read each file (and decode it), write it with ShardWriter."""
    import webdataset as wds
    from PIL import Image

    items, pattern, decode = job
    with wds.ShardWriter(pattern, maxcount=10_000, maxsize=1 << 30, verbose=0) as sink:
        for path, label in items:
            jpeg = path.read_bytes()
            if decode:
                with Image.open(io.BytesIO(jpeg)) as image:
                    image.load()
            sink.write({"__key__": f"{label}/{path.stem}", "jpg": jpeg, "cls": label})


def _ns(out: Path, images: Path, workers: int, verify: str, per_shard: int) -> None:
    from ns_data.ingest.pipeline import ShardConfig, shard_images

    config = ShardConfig(workers=workers, verify=verify, max_count=per_shard)  # type: ignore[arg-type]  # checked there
    shard_images(images, out / "set", config)
