"""ImageNet-C-style copies of an evaluation set: 15 benchmark corruptions + 4 extra, severities 1-5.

The corruption functions are imagecorruptions-imaug's (a maintained fork of bethgelab's
imagecorruptions, the pip-installable port of Hendrycks & Dietterich's ImageNet-C code); this
module seeds them, sizes their input and writes their output. Where they differ from the
released ImageNet-C:
- The released set was made from 224×224 center crops; here each image keeps its own size, and
  the pixel-sized parameters (blur radii, glass-blur shuffles, snow and spatter kernels) are
  ImageNet-C's, so on small images those corruptions are relatively much stronger than in
  CIFAR-10-C or Tiny-ImageNet-C, whose authors retuned them. Images under 32 px on a side (the
  library's minimum) are upscaled, corrupted and scaled back (`corrupt_image`).
- `frost` crops the library's bundled frost photos (485-900 px wide) at full scale, so a small
  image gets a window of a few ice crystals, where CIFAR-10-C shrank the photos first.
- `elastic_transform` is the library's size-relative rewrite (displacements smoothed over 1% of
  the image size, no affine step): a local jitter, not ImageNet-C's smooth 224-px warp.
- `motion_blur` and `snow` use the library's numpy motion-blur kernel, not ImageMagick's (Wand);
  `glass_blur` shuffles pixels with numba's RNG (seeded per image) and compiles on its first call
  in each process (a few seconds).
- `spatter` at severity 1 sometimes draws no drop at all on a small image (about 1 in 70 at
  32 px); the library then divides 0 by 0 and returns a black image. Here the image comes back
  unchanged instead, which is what no drops means.
- Images are stored as JPEG at `quality` (90 by default; the released set used 85).

`corrupt_set` writes one unit per (corruption, severity), `OUT/<corruption>/<severity>/`, under
a temporary name renamed into place when complete: a rerun skips finished units and removes the
temporaries of a killed run (one run per OUT at a time). Every image's seed derives from the run's
seed, the corruption, the severity and the sample's position in the source, so reruns give the
same bytes whatever the number of workers.
"""

from __future__ import annotations

import inspect
import io
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from queue import Empty
from typing import Any, Literal

import cv2
import numpy as np
from imagecorruptions import corrupt, corruption_dict
from PIL import Image
from rich.progress import Progress, TaskID

from ns_data.atomic import atomic_path, write_json
from ns_data.errors import DataError
from ns_data.ingest.labeled_source import (
    LabeledImages,
    decode_rgb,
    open_labeled,
    released_name,
    select_per_class,
)
from ns_data.progress import image_progress
from ns_data.robustness.names import CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES
from ns_data.robustness.names import CORRUPTIONS_RECORD as RECORD_NAME
from ns_data.shards.writer import ShardSetWriter

LAYOUTS = ("shards", "imagenet-c")
Layout = Literal["shards", "imagenet-c"]
MIN_SIDE = 32
"""The library's smallest image side; smaller images are upscaled to it (see `corrupt_image`)."""
LIBRARY = "imagecorruptions-imaug"
LIBRARY_VERSION = version(LIBRARY)
RECORD_FORMAT = "ns-corruptions/1"

_NAMES = CORRUPTIONS + EXTRA_CORRUPTIONS
_TAKES_SEED = frozenset(
    name for name in _NAMES if "seed" in inspect.signature(corruption_dict[name]).parameters
)
_REPORT_EVERY = 16
"""Images between two progress messages of a worker."""


@dataclass(frozen=True, slots=True)
class CorruptReport:
    """What `corrupt_set` did: units (corruption, severity) written and skipped as already done."""

    units_written: int
    units_skipped: int
    images: int
    """Images written by this run."""
    seconds: float
    out: Path


def check_corruption(name: str) -> None:
    """Raise DataError listing the valid names when `name` is not one."""
    if name not in _NAMES:
        raise DataError(f"unknown corruption {name!r}; choose from {', '.join(_NAMES)}")


def check_severity(severity: int) -> None:
    """Raise DataError when `severity` is not an integer in 1-5."""
    if severity not in SEVERITIES or isinstance(severity, bool):
        raise DataError(f"severity {severity!r} is outside 1-5; pass a severity from 1 to 5")


def corrupt_image(pixels: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """`pixels` (uint8 HWC RGB) corrupted by `name` at `severity`; the same for the same seed.

    Reseeds numpy's global RNG with `seed` (the library draws from it) and passes `seed=` to
    the functions that take one. An image under 32 px on a side is upscaled (bicubic, aspect
    kept) until its shorter side is 32, corrupted, and scaled back to its size (bicubic).
    """
    check_corruption(name)
    check_severity(severity)
    if not 0 <= seed < 2**32:
        raise DataError(f"seed {seed} is outside [0, 2**32); pass a smaller non-negative seed")
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise DataError(
            f"corrupt_image needs a uint8 (height, width, 3) RGB array, not {pixels.dtype} "
            f"{pixels.shape}; convert the image to RGB first"
        )
    height, width = pixels.shape[:2]
    if min(height, width) >= MIN_SIDE:
        return _corrupt(pixels, name, severity, seed)
    scale = MIN_SIDE / min(height, width)
    size = (max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale)))
    large = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC))
    small = Image.fromarray(_corrupt(large, name, severity, seed))
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC))


def _corrupt(pixels: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    image = np.ascontiguousarray(pixels)
    np.random.seed(seed)
    kwargs = {"seed": seed} if name in _TAKES_SEED else {}
    if name != "spatter":
        return corrupt(image, severity=int(severity), corruption_name=name, **kwargs)
    with np.errstate(invalid="raise"):  # no drop fell: 0/0 in the library (see the module doc)
        try:
            return corrupt(image, severity=int(severity), corruption_name=name)
        except FloatingPointError:
            return image.copy()


@dataclass(frozen=True)
class _Plan:
    """What every unit shares; set once per worker process."""

    images: LabeledImages
    positions: list[int]
    seed: int
    layout: Layout
    quality: int


@dataclass(frozen=True, slots=True)
class _Unit:
    number: int
    corruption: str
    severity: int
    path: Path


def corrupt_set(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    corruptions: Sequence[str] = CORRUPTIONS + EXTRA_CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    workers: int | None = None,
    layout: Layout = "shards",
    quality: int = 90,
    limit_per_class: int | None = None,
    progress: bool = True,
) -> CorruptReport:
    """Write corrupted copies of a labeled shard set or class-folder tree under `out`.

    layout "shards": one shard set per unit at `OUT/<corruption>/<severity>/` (same classes and
    keys as the source); "imagenet-c": `OUT/<corruption>/<severity>/<class>/<key>.JPEG`.
    `workers` processes (default: usable cores) each write whole units; `OUT/corruptions.json`
    records the options, merged over reruns.

    Example:
        corrupt_set("shards/val", "val-c", corruptions=["fog", "snow"], severities=[3, 5])
    """
    start = time.perf_counter()
    asked = {corruptions} if isinstance(corruptions, str) else set(corruptions)
    for name in sorted(asked):
        check_corruption(name)
    for severity in severities:
        check_severity(severity)
    names = [name for name in _NAMES if name in asked]
    levels = sorted({int(severity) for severity in severities})
    _check_options(names, levels, seed, workers, layout, quality, limit_per_class)
    source_path, out_path = Path(source).absolute(), Path(out).absolute()
    images = open_labeled(source_path)
    if out_path.resolve().is_relative_to(source_path.resolve()):
        raise DataError(f"output {out_path} is inside the source {source_path}; write it elsewhere")
    if layout == "imagenet-c":
        _check_class_names(images.classes, source_path)
    positions = select_per_class(images.labels, limit_per_class)
    record = {
        "format": RECORD_FORMAT,
        "source": images.description,
        "layout": layout,
        "seed": seed,
        "quality": quality,
        "limit_per_class": limit_per_class,
        "images_per_unit": len(positions),
        "library": LIBRARY,
        "library_version": LIBRARY_VERSION,
        "corruptions": names,
        "severities": levels,
    }
    _prepare(out_path, record)
    units = [(c, s, out_path / c / str(s)) for c in names for s in levels]
    todo = [_Unit(n, *unit) for n, unit in enumerate(u for u in units if not u[2].exists())]
    plan = _Plan(images, positions, seed, layout, quality)
    try:
        _run(plan, todo, workers or len(os.sched_getaffinity(0)), progress)
    finally:
        if images.shards is not None:
            images.shards.close()
    return CorruptReport(
        units_written=len(todo),
        units_skipped=len(units) - len(todo),
        images=len(todo) * len(positions),
        seconds=time.perf_counter() - start,
        out=out_path,
    )


def _check_options(
    names: list[str],
    levels: list[int],
    seed: int,
    workers: int | None,
    layout: str,
    quality: int,
    limit_per_class: int | None,
) -> None:
    if not names or not levels:
        raise DataError("no corruption or no severity was asked for; pass at least one of each")
    if not 0 <= seed < 2**32:
        raise DataError(f"seed {seed} is outside [0, 2**32); pass a smaller non-negative seed")
    if workers is not None and workers < 1:
        raise DataError(f"workers {workers} is not positive; pass 1 or more")
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if not 1 <= quality <= 100:
        raise DataError(f"JPEG quality {quality} is outside 1-100; pass e.g. 90")
    if limit_per_class is not None and limit_per_class < 1:
        raise DataError(f"limit per class {limit_per_class} is not positive; pass 1 or more")


def _check_class_names(classes: list[str], source: Path) -> None:
    for name in classes:
        if name in ("", ".", "..") or "/" in name:
            raise DataError(
                f"class {name!r} of {source} cannot name a folder; use layout shards or rename it"
            )


def _prepare(out: Path, record: dict[str, Any]) -> None:
    """Check that `out` is new or holds this run's kind of corruptions (merging the lists of
    corruptions and severities into `record`), write `record`, remove unfinished units."""
    path = out / RECORD_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            done_names, done_levels = set(old["corruptions"]), set(old["severities"])
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as err:
            raise DataError(f"{path} is unreadable ({err}); delete {out} and rerun") from err
        for field, value in record.items():
            if field not in ("corruptions", "severities") and old.get(field) != value:
                raise DataError(
                    f"{out} holds corruptions made with {field} {old.get(field)!r}, not "
                    f"{value!r}; choose a new folder or delete it"
                )
        record["corruptions"] = [n for n in _NAMES if n in done_names | {*record["corruptions"]}]
        record["severities"] = sorted(done_levels | {*record["severities"]})
    elif out.exists() and any(out.iterdir()):
        raise DataError(f"{out} is not empty and holds no {RECORD_NAME}; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    for unfinished in out.glob("*/.*.tmp-*"):
        shutil.rmtree(unfinished)


class _Tally:
    """Images and bytes written per unit, summed on one progress bar."""

    def __init__(self, bar: Progress, units: int, images: int) -> None:
        self.bar = bar
        self.task: TaskID = bar.add_task("corrupt", total=units * images, bytes=0)
        self.images = [0] * units
        self.bytes = [0] * units
        self.finished: set[int] = set()

    def report(self, unit: int, images: int, size: int, *, final: bool = False) -> None:
        if unit in self.finished:
            return
        if final:
            self.finished.add(unit)
        self.images[unit], self.bytes[unit] = images, size
        self.bar.update(self.task, completed=sum(self.images), bytes=sum(self.bytes))


def _run(plan: _Plan, units: list[_Unit], workers: int, progress: bool) -> None:
    """Write `units`, in this process or in `workers` spawned processes (one unit per task)."""
    if not units:
        return
    if min(workers, len(units)) == 1:
        with image_progress(progress) as bar:
            tally = _Tally(bar, len(units), len(plan.positions))
            for unit in units:
                images, size = _write_unit(plan, unit, tally.report)
                tally.report(unit.number, images, size, final=True)
        return
    context = multiprocessing.get_context("spawn")  # OpenCV's thread pool hangs a forked child
    messages = context.Queue()
    pool = ProcessPoolExecutor(
        min(workers, len(units)),
        mp_context=context,
        initializer=_start_worker,
        initargs=(plan, messages),
    )
    try:
        with image_progress(progress) as bar:
            tally = _Tally(bar, len(units), len(plan.positions))
            pending = {pool.submit(_write_in_worker, unit): unit for unit in units}
            while pending:
                done, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(messages, tally)
                for future in done:
                    images, size = future.result()
                    tally.report(pending.pop(future).number, images, size, final=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _drain(messages: Any, tally: _Tally) -> None:
    while True:
        try:
            unit, images, size = messages.get_nowait()
        except Empty:
            return
        tally.report(unit, images, size)


_worker: tuple[_Plan, Any] | None = None
"""In a worker process: the plan and the progress queue."""


def _start_worker(plan: _Plan, messages: Any) -> None:
    global _worker
    cv2.setNumThreads(1)  # one process per core already
    _worker = (plan, messages)


def _write_in_worker(unit: _Unit) -> tuple[int, int]:
    assert _worker is not None
    plan, messages = _worker
    return _write_unit(plan, unit, lambda n, images, size: messages.put((n, images, size)))


def _write_unit(
    plan: _Plan, unit: _Unit, report: Callable[[int, int, int], None]
) -> tuple[int, int]:
    """Write one unit under a temporary name, renamed into place; return (images, bytes)."""
    unit.path.parent.mkdir(parents=True, exist_ok=True)
    images = plan.images
    with atomic_path(unit.path) as tmp:
        try:
            samples = _Corrupted(plan, unit, report)
            if plan.layout == "shards":
                source = (
                    f"{images.description} {unit.corruption}/{unit.severity} "
                    f"(seed {plan.seed}, {LIBRARY} {LIBRARY_VERSION})"
                )
                prefix = f"{unit.corruption}-{unit.severity}"
                with ShardSetWriter(tmp, prefix, classes=images.classes, source=source) as w:
                    for position, data, size in samples:
                        label = images.labels[position]
                        w.add(images.keys[position], data, "jpg", label=label, size=size)
            else:
                tmp.mkdir()
                for position, data, _ in samples:
                    path = tmp / released_name(images, position)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return len(plan.positions), samples.written


class _Corrupted:
    """(position, JPEG bytes, (width, height)) of each kept sample, reporting progress."""

    def __init__(self, plan: _Plan, unit: _Unit, report: Callable[[int, int, int], None]) -> None:
        self.plan, self.unit, self.report = plan, unit, report
        self.written = 0
        """JPEG bytes yielded so far."""

    def __iter__(self) -> Iterator[tuple[int, bytes, tuple[int, int]]]:
        plan, unit = self.plan, self.unit
        index = _NAMES.index(unit.corruption)
        for done, position in enumerate(plan.positions, 1):
            pixels = decode_rgb(plan.images, position)
            seed = np.random.SeedSequence([plan.seed, index, unit.severity, position])
            image_seed = int(seed.generate_state(1)[0])
            corrupted = corrupt_image(pixels, unit.corruption, unit.severity, image_seed)
            buffer = io.BytesIO()
            Image.fromarray(corrupted).save(buffer, format="JPEG", quality=plan.quality)
            data = buffer.getvalue()
            self.written += len(data)
            yield position, data, (pixels.shape[1], pixels.shape[0])
            if done % _REPORT_EVERY == 0:
                self.report(unit.number, done, self.written)
