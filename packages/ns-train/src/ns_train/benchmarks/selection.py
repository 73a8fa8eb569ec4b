"""The selection kernels (`ns_data.labels.selection.select`, numba, O(rows)) against numpy.

The numpy baseline applies the same rule with a global sort (lexsort by class, confidence
descending, row), as one would write it without the kernels. Synthetic pseudo labels: Zipf-like
class frequencies over 1000 classes, Beta(2, 1.5) confidences, the paper's threshold 0.3 and
its target share (130K per class from 300M rows, scaled to the row count). Row counts run up to
--rows by factors of 10. Extra peak memory, at the largest count, is the growth of the
process's peak RSS (VmHWM, reset through /proc/self/clear_refs) over its RSS before the call
(Linux only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Candidate, Metrics, Row, rows_of
from ns_train.benchmarks.settings import PAPER_UNLABELED

CLASSES = 1000
THRESHOLD = 0.3
GIB = 2**30
UNITS = {"seconds": "s", "extra peak GiB": "GiB"}


def row_counts(largest: int) -> list[int]:
    """`largest`, and a tenth and a hundredth of it while those are at least 10,000."""
    counts = [largest // 100, largest // 10, largest]
    return [n for n in counts if n >= 10_000] or [largest]


def paper_target(rows: int) -> int:
    """The paper's share per class (130K per class from 300M rows), scaled to `rows`."""
    return max(1, round(rows * 130_000 / PAPER_UNLABELED))


def run(ctx: Context) -> Section:
    from ns_data.labels.selection import select

    largest = ctx.settings.rows or ctx.sizes.select_rows
    ctx.begin("select")
    rows: list[Row] = []
    notes: list[str] = []
    counts = row_counts(largest)
    for n in counts:
        top_class, confidence = synthetic(n, CLASSES)
        conf32 = confidence.astype(np.float32)
        target = paper_target(n)
        if n == counts[0]:  # numba compiles (or loads its cache) on the first call of a process
            for dtype, scores in (("float16", confidence), ("float32", conf32)):
                first = _numba(top_class, scores, target)["seconds"]
                name = f"numba select {dtype}, first call of the process"
                rows.append(Row(name, "seconds", "s", [first]))
        base = f"numpy lexsort, {n:,} rows"
        candidates = [
            Candidate(base, partial(_np, top_class, confidence, target, n == largest)),
            Candidate(
                f"numba select float16, {n:,} rows",
                partial(_numba, top_class, confidence, target, n == largest),
                base,
            ),
            Candidate(
                f"numba select float32, {n:,} rows",
                partial(_numba, top_class, conf32, target, n == largest),
                base,
            ),
        ]
        rows += rows_of(candidates, ctx.rounds(candidates), UNITS)
        same = np.array_equal(
            numpy_select(top_class, confidence, CLASSES, THRESHOLD, target),
            select(top_class, confidence, num_classes=CLASSES, per_class=target),
        )
        notes.append(f"{n:,} rows: numba's copies equal numpy's: {same}")
    return Section(
        "select",
        "filter + balance pseudo labels: numba kernels vs a numpy lexsort",
        {
            "rows": ", ".join(f"{n:,}" for n in counts),
            "classes": CLASSES,
            "threshold": THRESHOLD,
            "target per class": "130K per 300M rows",
        },
        rows,
        notes,
    )


def _numba(
    top_class: np.ndarray, confidence: np.ndarray, target: int, memory: bool = False
) -> Metrics:
    from ns_data.labels.selection import select

    seconds, _, peak = _measure(
        lambda: select(top_class, confidence, num_classes=CLASSES, per_class=target)
    )
    return {"seconds": seconds, "extra peak GiB": peak / GIB} if memory else {"seconds": seconds}


def _np(top_class: np.ndarray, confidence: np.ndarray, target: int, memory: bool) -> Metrics:
    seconds, _, peak = _measure(
        lambda: numpy_select(top_class, confidence, CLASSES, THRESHOLD, target)
    )
    return {"seconds": seconds, "extra peak GiB": peak / GIB} if memory else {"seconds": seconds}


def synthetic(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Zipf(1)-like int16 classes via a 65536-entry lookup table; Beta(2, 1.5) float16 scores."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, classes + 1)
    edges = np.cumsum(weights) / weights.sum()
    table = np.searchsorted(edges, (np.arange(65536) + 0.5) / 65536).astype(np.int16)
    rng.shuffle(table)
    top_class = np.empty(rows, dtype=np.int16)
    confidence = np.empty(rows, dtype=np.float16)
    step = 10_000_000
    for start in range(0, rows, step):
        stop = min(start + step, rows)
        top_class[start:stop] = table[rng.integers(0, 65536, stop - start, dtype=np.uint16)]
        confidence[start:stop] = rng.beta(2.0, 1.5, stop - start)
    return top_class, confidence


def numpy_select(
    top_class: np.ndarray, confidence: np.ndarray, num_classes: int, threshold: float, target: int
) -> np.ndarray:
    """The same rule with a global sort: lexsort the pool by (class, confidence desc, row)."""
    pooled = np.flatnonzero(confidence >= threshold)
    order = pooled[np.lexsort((-confidence[pooled], top_class[pooled]))]
    classes = top_class[order]
    pool = np.bincount(classes, minlength=num_classes)
    rank = np.arange(order.size) - np.repeat(np.cumsum(pool) - pool, pool)
    size = pool[classes]
    each, extra = np.divmod(target, np.maximum(size, 1))
    copies = np.zeros(top_class.size, dtype=np.uint8)
    copies[order] = np.where(size >= target, rank < target, each + (rank < extra))
    return copies


def _measure(run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray, int]:
    """Seconds, result and peak RSS growth in bytes of one call (0 where /proc lacks it)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    peak = 0 if before is None else max(0, (_status_kib("VmHWM") - before) * 1024)
    return seconds, result, peak


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} missing from /proc/self/status")
