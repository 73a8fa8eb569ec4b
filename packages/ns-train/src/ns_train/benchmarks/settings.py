"""What `ns bench` runs: the sub-benchmark names, the sizes of each scale, the user's options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ns_train.errors import TrainError

NAMES = (
    "shard", "loader", "label", "train", "select", "sizes", "scaling", "contention", "knobs",
)  # fmt: skip
"""Every sub-benchmark, in the order `ns bench` runs them."""
QUICK_NAMES = tuple(n for n in NAMES if n != "scaling")
"""What `ns bench --quick` runs unless names are given: at its sizes scaling would time start-up."""
PAPER_UNLABELED = 300_000_000
"""The paper's unlabeled images (JFT-300M): the size that totals and plans are given for."""
CORPORA = ("500x375", "640x480", "1024x768", "imagenet-mix")
"""Photo sizes of the built corpus (see `ns_train.benchmarks.corpus`)."""
ScaleName = Literal["full", "quick", "smoke"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale:
    """The sizes of one run: `full` (the docs' tables), `quick` (the default set in about two
    minutes on 2 idle cores) or `smoke` (the smallest sizes: checks that everything runs)."""

    name: ScaleName
    repeats: int
    """Interleaved rounds, unless --repeats says otherwise."""
    images: int
    """Photos in the built corpus (shard, loader, label and train read them)."""
    shard_size: int
    """Samples per tar of the corpus's shard set and of `ns shard` in the shard benchmark."""
    loader_size: int
    loader_batch: int
    label_size: int
    label_batch: int
    train_size: int
    train_batch: int
    train_steps: int
    select_rows: int
    """Largest number of pseudo-label rows (the default of --rows)."""
    step_size: int
    """Image side of the synthetic step loops (contention, knobs)."""
    step_batch: int
    step_count: int
    """Timed steps of a synthetic step loop (after warm-up steps)."""
    knob_sizes: tuple[int, ...]
    scaling_images: tuple[int, ...]
    """Image counts of the scaling benchmark's shard, loader and label stages."""
    scaling_label_images: int
    """The largest of those that the label stage runs (the slowest per image on a CPU)."""
    scaling_rows: tuple[int, ...]
    """Pseudo-label rows of the scaling benchmark's select stage."""
    thorough: bool
    """The slow extras too: torch.compile in knobs (its first step compiles for minutes on a
    small CPU) and OMP_WAIT_POLICY=PASSIVE in contention (a step-loop process of its own)."""


SCALES = {
    "full": Scale(
        name="full", repeats=3, images=2000, shard_size=500, loader_size=224, loader_batch=64,
        label_size=224, label_batch=64, train_size=128, train_batch=32, train_steps=60,
        select_rows=30_000_000, step_size=32, step_batch=32, step_count=20,
        knob_sizes=(64, 128), scaling_images=(200, 2000, 20000), scaling_label_images=2000,
        scaling_rows=(1_000_000, 10_000_000, 100_000_000), thorough=True,
    ),
    "quick": Scale(
        name="quick", repeats=2, images=128, shard_size=32, loader_size=64, loader_batch=16,
        label_size=64, label_batch=16, train_size=32, train_batch=8, train_steps=20,
        select_rows=1_000_000, step_size=32, step_batch=8, step_count=4,
        knob_sizes=(32,), scaling_images=(16, 64), scaling_label_images=64,
        scaling_rows=(10_000, 100_000, 1_000_000), thorough=False,
    ),
    "smoke": Scale(
        name="smoke", repeats=1, images=24, shard_size=8, loader_size=32, loader_batch=8,
        label_size=32, label_batch=8, train_size=32, train_batch=8, train_steps=3,
        select_rows=20_000, step_size=16, step_batch=4, step_count=1,
        knob_sizes=(16,), scaling_images=(8, 16), scaling_label_images=16,
        scaling_rows=(10_000, 20_000), thorough=False,
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchSettings:
    """The options of one `ns bench` run; bad values raise TrainError naming the option."""

    names: tuple[str, ...] = NAMES
    scale: ScaleName = "full"
    repeats: int | None = None
    """Rounds per candidate (default: the scale's)."""
    rows: int | None = None
    """Largest row count of the select benchmark (default: the scale's)."""
    data: Path | None = None
    """A shard set of the user's for loader, label and train instead of the built corpus."""
    cache: Path | None = None
    """Where the built corpus is kept (default: ~/.cache/ns/bench)."""
    corpus: str = "500x375"
    workers: int | None = None
    """Loader and shard workers (default: the usable cores, at most 8)."""
    device: str = "auto"
    model: str = "efficientnet_b0"

    def __post_init__(self) -> None:
        unknown = [n for n in self.names if n not in NAMES]
        if unknown:
            raise TrainError(
                f"unknown benchmark {', '.join(map(repr, unknown))}: choose from {', '.join(NAMES)}"
            )
        if not self.names:
            raise TrainError(f"no benchmark chosen: name some of {', '.join(NAMES)}")
        if self.scale not in SCALES:
            raise TrainError(f"unknown scale {self.scale!r}: full, quick or smoke")
        if self.corpus not in CORPORA:
            raise TrainError(f"unknown --corpus {self.corpus!r}: choose from {', '.join(CORPORA)}")
        for name in ("repeats", "rows", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TrainError(f"--{name} must be a positive integer, got {value}")

    @property
    def sizes(self) -> Scale:
        return SCALES[self.scale]

    @property
    def rounds(self) -> int:
        return self.repeats or self.sizes.repeats

    @property
    def cache_dir(self) -> Path:
        return self.cache or Path.home() / ".cache" / "ns" / "bench"
