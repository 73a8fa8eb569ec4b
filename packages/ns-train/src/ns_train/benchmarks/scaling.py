"""How each stage's time grows with the data and with the cores, and what 300M images would take.

Every stage runs at each of the scale's sizes (1×, 10×, 100× a base where the scale allows) on
1 core, 2 cores and every usable core: the process's affinity is narrowed with
`os.sched_setaffinity`, which each ns stage follows for its workers and threads, so "1 core"
really is one. The stages, each through its public API and timed end to end:
- shard: `shard_images` over a folder of N corpus photos (hard links: the corpus repeated under
  new names, so the larger sizes read each photo again from the page cache);
- loader: opening those shards and one epoch of the training loader (DALI on the CPU when it
  imports, else torch) with RandAugment (2, 9);
- label: `label()` of a random-weight model over them (up to the scale's label size: labeling
  is the slowest stage per image on a CPU);
- select: `select()` over N synthetic pseudo-label rows (the select benchmark's).
Each stage runs once at its smallest size before the timed runs, so that imports and first
calls are not counted. The notes give, per stage and core count, the growth exponent between the
two largest sizes (1.00: linear; seconds ∝ N^k), and a least-squares line seconds = start-up +
N × cost per item; the cost per item on one core gives the core-hours for 300M items. The results
file's `series` holds the points; `plot` draws them log-log beside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Row
from ns_train.benchmarks.settings import PAPER_UNLABELED
from ns_train.benchmarks.table import number

STAGES = ("shard", "loader", "label", "select")
Point = tuple[int, float]
"""(items, seconds) of one timed run."""


def core_counts(usable: int) -> list[int]:
    """1, 2 and every usable core (each once)."""
    return sorted({1, min(2, usable), usable})


def growth_exponent(points: list[Point]) -> float | None:
    """k in seconds ∝ N^k between the two largest sizes (1: linear); None under two sizes."""
    (n1, s1), (n2, s2) = sorted(points)[-2:] if len(points) > 1 else (points[0], points[0])
    if n1 == n2:
        return None
    return float(np.log(max(s2, 1e-9) / max(s1, 1e-9)) / np.log(n2 / n1))


def linear_fit(points: list[Point]) -> tuple[float, float] | None:
    """(start-up seconds, seconds per item) of the least-squares line; None under two sizes."""
    if len({n for n, _ in points}) < 2:
        return None
    per_item, start_up = np.polyfit([n for n, _ in points], [s for _, s in points], 1)
    return float(start_up), float(per_item)


def run(ctx: Context) -> Section:
    from ns_data.cpus import usable_cores

    sizes, repeats = ctx.sizes.scaling_images, ctx.settings.repeats or 1
    label_sizes = [n for n in sizes if n <= ctx.sizes.scaling_label_images]
    rows_counts = ctx.sizes.scaling_rows
    cores = core_counts(usable_cores()) if hasattr(os, "sched_setaffinity") else [usable_cores()]
    runs = {"shard": sizes, "loader": sizes, "label": label_sizes, "select": rows_counts}
    ctx.begin("scaling")
    ctx.expect(repeats * len(cores) * sum(len(counts) for counts in runs.values()))
    series: dict[str, dict[str, list[Point]]] = {stage: {} for stage in STAGES}
    stages = _Stages(ctx, ctx.work / "scaling")
    for stage in STAGES:  # imports and first calls, not timed
        getattr(stages, stage)(runs[stage][0])
    for count in cores:
        with _pinned(count):
            for stage in STAGES:
                for n in runs[stage]:
                    ctx.tick(f"{stage}, {_cores(count)}, {n:,}")
                    seconds = min(getattr(stages, stage)(n) for _ in range(repeats))
                    series[stage].setdefault(str(count), []).append((n, seconds))
    shutil.rmtree(ctx.work / "scaling", ignore_errors=True)
    return Section(
        "scaling",
        "how each stage's time grows with the data and the cores",
        {
            "images": ", ".join(f"{n:,}" for n in sizes),
            "label images": ", ".join(f"{n:,}" for n in label_sizes),
            "select rows": ", ".join(f"{n:,}" for n in rows_counts),
            "cores": ", ".join(map(str, cores)),
            "corpus": ctx.settings.corpus,
            "image side": f"loader {ctx.sizes.loader_size}, label {ctx.sizes.label_size}",
            "model": ctx.settings.model,
            "timing": f"best of {repeats}" if repeats > 1 else "one run each",
        },
        _rows(series),
        notes(series),
        series={stage: by_cores for stage, by_cores in series.items() if by_cores},
    )


class _Stages:
    """Each stage as a function of its size: seconds of one run."""

    def __init__(self, ctx: Context, work: Path) -> None:
        self.ctx, self.work = ctx, work
        self.photos = sorted(ctx.corpus().images.glob("class*/*.jpg"))
        self.checkpoint: Path | None = None

    def folder(self, n: int) -> Path:
        """A folder of `n` photos in the corpus's class folders (hard links, else copies)."""
        out = self.work / f"photos-{n}"
        if out.exists():
            return out
        partial = self.work / f".photos-{n}"
        shutil.rmtree(partial, ignore_errors=True)
        for index in range(n):
            photo = self.photos[index % len(self.photos)]
            target = partial / photo.parent.name / f"{index:07d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(photo, target)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(photo, target)
        partial.rename(out)
        return out

    def shards(self, n: int) -> Path:
        """The shard set of `n` photos (written by the first shard run, kept for the others)."""
        out = self.work / f"shards-{n}"
        if not (out / "manifest.json").exists():
            self.shard(n)
        return out

    def shard(self, n: int) -> float:
        from ns_data.cpus import usable_cores
        from ns_data.ingest.pipeline import ShardConfig, shard_images

        source, out = self.folder(n), self.work / f"shards-{n}"
        shutil.rmtree(out, ignore_errors=True)
        config = ShardConfig(max_count=self.ctx.sizes.shard_size, workers=usable_cores())
        return _timed(lambda: shard_images(source, out, config))

    def loader(self, n: int) -> float:
        from ns_data.cpus import usable_cores
        from ns_data.loading.config import LoaderConfig
        from ns_data.loading.loader import dali_available
        from ns_data.loading.views import View
        from ns_data.shards.reader import ShardSet

        shards = self.shards(n)
        backend: Literal["dali-cpu", "torch"] = "dali-cpu" if dali_available() else "torch"
        view = View(image_size=self.ctx.sizes.loader_size, train=True, randaugment_n=2)
        config = LoaderConfig(backend=backend, workers=usable_cores())

        def epoch() -> None:
            loader = config.build(
                ShardSet(shards),
                view,
                batch_size=self.ctx.sizes.loader_batch,
                device=self.ctx.device,
                shuffle=True,
            )
            for _ in loader:
                pass

        return _timed(epoch)

    def label(self, n: int) -> float:
        from ns_train.benchmarks.label import random_checkpoint
        from ns_train.config import LabelConfig
        from ns_train.labeler import label

        shards = self.shards(n)
        if self.checkpoint is None:
            self.checkpoint = random_checkpoint(
                self.work / "teacher", self.ctx.settings.model, self.ctx.sizes.label_size
            )
        checkpoint = self.checkpoint
        config = LabelConfig(
            batch_size=self.ctx.sizes.label_batch, device=self.ctx.device, bf16=self.ctx.cuda
        )
        out = Path(tempfile.mkdtemp(dir=self.work, prefix="labels-"))
        seconds = _timed(lambda: label(checkpoint, shards, out, config, show_progress=False))
        shutil.rmtree(out)
        return seconds

    def select(self, n: int) -> float:
        import numba

        from ns_data.cpus import usable_cores
        from ns_data.labels.selection import select
        from ns_train.benchmarks.selection import CLASSES, paper_target, synthetic

        top_class, confidence = synthetic(n, CLASSES)
        target = paper_target(n)
        threads = numba.get_num_threads()
        numba.set_num_threads(min(usable_cores(), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]  # set at import
        try:
            select(top_class[:1000], confidence[:1000], num_classes=CLASSES, per_class=1)  # warm
            return _timed(
                lambda: select(top_class, confidence, num_classes=CLASSES, per_class=target)
            )
        finally:
            numba.set_num_threads(threads)


@contextmanager
def _pinned(count: int) -> Iterator[None]:
    """Run the block on the first `count` of this process's cores (no-op without affinity)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(allowed)[:count])
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _cores(count: int) -> str:
    return f"{count} core" + ("s" if count > 1 else "")


def _duration(seconds: float) -> str:
    """A short time in the unit that suits it: 1.23 ms, 4.56 µs, 7.89 ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale * 0.9995:  # 999.8 µs reads 1 ms
            return f"{number(seconds / scale)} {unit}"
    return f"{number(seconds / 1e-9)} ns"


def _unit(stage: str) -> str:
    return "rows/s" if stage == "select" else "images/s"


def _rows(series: dict[str, dict[str, list[Point]]]) -> list[Row]:
    rows = []
    for stage, by_cores in series.items():
        for count, points in by_cores.items():
            for n, seconds in points:
                name = f"{stage}, {_cores(int(count))}, {n:,} {_items(stage)}"
                rows.append(Row(name, "seconds", "s", [seconds]))
                rows.append(Row(name, _unit(stage), _unit(stage), [n / seconds]))
    return rows


def _items(stage: str) -> str:
    return "rows" if stage == "select" else "images"


def notes(series: dict[str, dict[str, list[Point]]]) -> list[str]:
    """Per stage and core count: the growth exponent, start-up and cost per item; then the
    speed-up of the most cores over one at the largest size and the core-hours for 300M items."""
    lines = []
    for stage, by_cores in series.items():
        items = _items(stage)
        for count, points in by_cores.items():
            parts = []
            slope, fit = growth_exponent(points), linear_fit(points)
            if fit is not None:
                start_up, per_item = fit
                start = f"{number(start_up)} s" if start_up > 0 else "no"  # < 0: fit noise
                parts.append(f"{start} start-up + {_duration(per_item)} per {items[:-1]}")
            if slope is not None:
                (n1, _), (n2, _) = sorted(points)[-2:]
                parts.append(f"seconds ∝ N^{slope:.2f} from {n1:,} to {n2:,} {items}")
            if fit is not None and count == "1" and fit[1] > 0:
                hours = PAPER_UNLABELED * fit[1] / 3600
                parts.append(
                    f"{number(hours)} core-hours for {PAPER_UNLABELED // 1_000_000}M {items}"
                )
            if parts:
                lines.append(f"{stage} on {_cores(int(count))}: " + "; ".join(parts))
        largest = {int(c): max(points) for c, points in by_cores.items() if points}
        if 1 in largest and max(largest) > 1 and largest[max(largest)][0] == largest[1][0]:
            most = max(largest)
            speedup = largest[1][1] / largest[most][1]
            lines.append(
                f"{stage}: {_cores(most)} {speedup:.2f}× one at {largest[1][0]:,} {items} "
                f"(ideal {most}×)"
            )
    return lines


def plot(section: Section, out: Path) -> Path:
    """One log-log panel per stage: seconds over items, a line per core count, and a dashed
    line of slope 1 (linear growth) through each 1-core series' first point."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from ns_train.plots import save_figure

    stages = [s for s in STAGES if section.series.get(s)]
    fig, axes = plt.subplots(1, len(stages), figsize=(3.6 * len(stages), 3.4), squeeze=False)
    for axis, stage in zip(axes[0], stages, strict=True):
        for count, points in section.series[stage].items():
            ns, seconds = zip(*points, strict=True)
            axis.loglog(ns, seconds, marker="o", label=_cores(int(count)))
            if count == "1" and len(ns) > 1:
                axis.loglog(
                    [ns[0], ns[-1]],
                    [seconds[0], seconds[0] * ns[-1] / ns[0]],
                    ls="--",
                    color="gray",
                    lw=1,
                    label="linear",
                )
        axis.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels collide
        axis.set(xlabel=_items(stage), ylabel="seconds", title=stage)
        axis.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return out
