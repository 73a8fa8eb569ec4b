"""Benchmark `ns_data.labels.selection.select` (numba, O(n)) against a numpy lexsort of the same rule.

Synthetic pseudo labels: Zipf-like class frequencies, Beta(2, 1.5) confidences as float16, the
paper's threshold 0.3 and a uniform per-class target (paper: 130K of 1000 classes from 300M).
Peak memory is the growth of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs)
over its RSS before the call, so the inputs, reported separately, are not counted.

    uv run --frozen python bench/bench_selection.py --rows 300_000_000 --classes 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

GIB = 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=None, help="default: 130K per 300M rows")
    parser.add_argument("--numpy-rows", type=int, default=None, help="default: --rows")
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()
    per_class = args.per_class or round(args.rows * 130_000 / 300_000_000 * 1000 / args.classes)
    numpy_rows = min(args.numpy_rows or args.rows, args.rows)

    # A fresh numba cache, so that the first call includes compilation.
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ns-bench-numba-")
    import numba

    from ns_data.labels.selection import select, summarize

    top_class, confidence = synthetic(args.rows, args.classes)
    print(
        f"{args.rows:,} rows, {args.classes} classes, target {per_class:,} per class, "
        f"threshold 0.3, {numba.get_num_threads()} numba threads, {os.cpu_count()} cpus; inputs: "
        f"top_class int16 {top_class.nbytes / GIB:.2f} GiB + confidence float16 "
        f"{confidence.nbytes / GIB:.2f} GiB"
    )

    numba_f16 = partial(
        select, top_class, confidence, num_classes=args.classes, per_class=per_class
    )
    rows = []
    copies, row = timed("numba select, float16", args.rows, numba_f16, args.warm_runs)
    rows.append(row)
    summary = partial(summarize, top_class, confidence, copies, args.classes)
    rows.append(timed("numba summarize, float16", args.rows, summary, 1)[1])
    reference_copies = copies[:numpy_rows].copy()
    del copies, summary

    conf32 = confidence.astype(np.float32)
    numba_f32 = partial(select, top_class, conf32, num_classes=args.classes, per_class=per_class)
    copies32, row = timed("numba select, float32", args.rows, numba_f32, args.warm_runs)
    rows.append(row)
    same32 = np.array_equal(copies32, numba_f16())
    del conf32, copies32, numba_f32

    per_class_np = round(per_class * numpy_rows / args.rows)
    if numpy_rows != args.rows:
        reference_copies = select(
            top_class[:numpy_rows],
            confidence[:numpy_rows],
            num_classes=args.classes,
            per_class=per_class_np,
        )
    np_copies, row = timed(
        "numpy lexsort, float16",
        numpy_rows,
        lambda: numpy_select(
            top_class[:numpy_rows], confidence[:numpy_rows], args.classes, 0.3, per_class_np
        ),
        warm_runs=0,
    )
    rows.append(row)
    same = np.array_equal(np_copies, reference_copies)

    print(f"\nfirst call compiles into a fresh cache; warm = median of {args.warm_runs} runs\n")
    print("| implementation | rows | first call s | warm s | extra peak GiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, n, first_s, warm_s, peak_b in rows:
        print(f"| {name} | {n:,} | {first_s:.2f} | {warm_s:.2f} | {peak_b / GIB:.2f} |")
    speedup = rows[-1][2] / numpy_rows / (rows[0][3] / args.rows)
    print(
        f"\nnumba float16 (warm) vs numpy: {speedup:.0f}x faster per row; same copies as numpy: "
        f"{same}; float32 path same as float16: {same32}"
    )


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


def timed(
    name: str, rows: int, run: Callable[[], np.ndarray], warm_runs: int
) -> tuple[np.ndarray, tuple[str, int, float, float, int]]:
    """The first call's result and a table row: seconds of the first call, median seconds of
    `warm_runs` more (the first's when 0), and the largest peak RSS growth of the warm calls
    (the first's when 0: that one includes compilation)."""
    first_s, result, peak = measure(run)
    warm = [measure(run) for _ in range(warm_runs)]
    warm_s = statistics.median(w[0] for w in warm) if warm else first_s
    peak = max(w[2] for w in warm) if warm else peak
    return result, (name, rows, first_s, warm_s, peak)


def measure(run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray, int]:
    """Seconds, result and peak RSS growth in bytes of one call."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return seconds, result, (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


if __name__ == "__main__":
    main()
