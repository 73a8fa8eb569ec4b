"""Filter and balance pseudo labels: the selection plan, one copy count per unlabeled sample.

The rule (Xie et al. 2019, Noisy Student): a sample whose teacher confidence is under the
threshold is never kept. A class with a pool of p samples at or over the threshold and a target of
t keeps, when p >= t, exactly its t most confident samples once; when 0 < p < t, every pooled
sample with floor(t/p) or ceil(t/p) copies, the extra copies going to the most confident. Ties in
confidence go to the lower row first. Each class with p > 0 ends with exactly t copies.

Runs in O(rows) without a sort: a per-class radix select over the confidence's IEEE bits (exact
for float16 and float32 alike, see `selection_kernels`), then one pass writing the copy counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from ns_data.errors import DataError
from ns_data.labels import kernels as kernels

if "NUMBA_THREADING_LAYER" not in os.environ:
    # numba's default OpenMP layer sets the process's OpenMP thread count to every core, and
    # torch shares that runtime: a plan made inside a training process (`ns run`) silently raised
    # torch's threads (`OMP_NUM_THREADS`, `torch.set_num_threads`) for every later step, and so
    # changed its floating-point results. numba's own pool leaves OpenMP alone, at the same speed.
    numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]  # set at import

DEFAULT_THRESHOLD = 0.3
"""The paper's confidence threshold on ImageNet."""

HISTOGRAM_BUDGET = 2**20
"""Bytes of one thread's histogram, about a core's L2 cache: 1000 classes get 256 bins per pass.
Measured at 300M rows: two passes of 64 bins beat one of 2048 (float16 over 0.3) by ~1.6x."""

MAX_DIGIT_BITS = 11
"""At most 2**11 bins per class and pass (few classes): float16 over 0.3 then takes one pass."""

_CHUNK_ROWS = 2**31
"""Rows per chunk at most, so that uint32 histogram counts cannot overflow."""

_CLASS_DTYPES = (np.dtype(np.int16), np.dtype(np.int32))
_BITS: dict[np.dtype, np.dtype] = {
    np.dtype(np.float16): np.dtype(np.uint16),
    np.dtype(np.float32): np.dtype(np.uint32),
}


@dataclass(frozen=True, slots=True)
class _Keys:
    """Confidence bits of one input plus the integer bounds the kernels compare them with."""

    confidence: np.ndarray
    bits: np.ndarray
    key_lo: int
    u_max: int
    neg_zero: int


def select(
    top_class: np.ndarray,
    confidence: np.ndarray,
    *,
    num_classes: int,
    threshold: float = DEFAULT_THRESHOLD,
    per_class: int | np.ndarray | None = None,
) -> np.ndarray:
    """Copy count per sample (0 = dropped) after the threshold and the per-class targets.

    Args:
        top_class: the teacher's class per sample, int16 or int32 in [0, num_classes).
        confidence: the teacher's probability of that class, float16 or float32 in [0, 1].
        num_classes: number of classes.
        threshold: samples with confidence under it are dropped.
        per_class: target copies per class, one int for all or an array of num_classes;
            None keeps every sample at or over the threshold once (filter only).

    Returns:
        uint8 copy counts, uint16 or uint32 when a class needs more copies of one sample.
    """
    top_class, keys = _check_inputs(top_class, confidence, num_classes, threshold)
    targets = None if per_class is None else _check_targets(per_class, num_classes)
    n = top_class.size
    bounds = _chunk_bounds(n)
    width, levels = _radix_plan(keys.u_max, num_classes)
    shift = (levels - 1) * width

    hist = np.zeros((bounds.size - 1, num_classes, (keys.u_max >> shift) + 1), dtype=np.uint32)
    all_classes = np.zeros(num_classes, dtype=np.int64)
    _histogram(top_class, keys, shift, width, all_classes, bounds, hist)
    pool = hist.sum(axis=(0, 2), dtype=np.int64)

    need, high, low = _plan_copies(pool, targets)
    copies = np.empty(n, dtype=_copies_dtype(int(high.max(initial=0))))
    cut, take, rank_start = _radix_select(top_class, keys, hist, need, shift, width, bounds)
    kernels.assign(
        top_class,
        keys.bits,
        keys.neg_zero,
        keys.key_lo,
        cut,
        take,
        rank_start,
        high.astype(copies.dtype),
        low.astype(copies.dtype),
        bounds,
        copies,
    )
    return copies


def proportional_targets(labeled_class_counts: np.ndarray, total: int) -> np.ndarray:
    """Per-class targets following the labeled set's class distribution, summing to `total`.

    Each class gets `total * count / sum(counts)` rounded by largest remainder (ties to the lower
    class). The paper used a uniform 130K per class on ImageNet instead; its labeled set is nearly
    uniform, so the two coincide there.
    """
    counts = np.asarray(labeled_class_counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer):
        raise DataError(
            "labeled_class_counts must be a non-empty 1-D integer array; pass one count per class"
        )
    if (counts < 0).any() or counts.sum() == 0:
        raise DataError(
            "labeled_class_counts must be non-negative with a positive sum; count the labeled set"
        )
    if total < 0:
        raise DataError(f"total must be >= 0, got {total}; pass the number of copies to select")
    exact = [int(c) * total for c in counts.tolist()]
    labeled = int(counts.sum())
    floors = [e // labeled for e in exact]
    order = sorted(range(counts.size), key=lambda c: (-(exact[c] % labeled), c))
    for c in order[: total - sum(floors)]:
        floors[c] += 1
    return np.array(floors, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class SelectionSummary:
    """What a selection plan does, per class (index = class id) and in total.

    `pool`: samples at or over the threshold; `below`: samples under it; `kept`: distinct samples
    with copies; `dropped`: pooled samples without copies; `duplicates`: copies beyond the first;
    `copies`: all copies, i.e. what the student trains on per epoch.
    """

    threshold: float
    below: np.ndarray
    pool: np.ndarray
    kept: np.ndarray
    dropped: np.ndarray
    duplicates: np.ndarray
    copies: np.ndarray

    @property
    def totals(self) -> dict[str, int]:
        """Sums over classes, plus `rows`, the number of samples."""
        sums = {name: int(getattr(self, name).sum()) for name in _SUMMARY_FIELDS}
        return {"rows": sums["below"] + sums["pool"], **sums}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the threshold, the totals and one list per per-class field."""
        per_class = {name: getattr(self, name).tolist() for name in _SUMMARY_FIELDS}
        return {"threshold": self.threshold, "totals": self.totals, "per_class": per_class}


_SUMMARY_FIELDS = ("below", "pool", "kept", "dropped", "duplicates", "copies")


def summarize(
    top_class: np.ndarray,
    confidence: np.ndarray,
    copies: np.ndarray,
    num_classes: int,
    threshold: float = DEFAULT_THRESHOLD,
) -> SelectionSummary:
    """Count per class what the plan `copies` (from `select`, same threshold) keeps and drops."""
    top_class, keys = _check_inputs(top_class, confidence, num_classes, threshold)
    copies = np.ascontiguousarray(copies)
    if copies.shape != top_class.shape or copies.dtype.kind != "u":
        raise DataError(
            f"copies must be an unsigned integer array of {top_class.size} rows, got "
            f"{copies.dtype} {copies.shape}; pass the array select() returned"
        )
    bounds = _chunk_bounds(top_class.size)
    counts = np.zeros((bounds.size - 1, num_classes, 4), dtype=np.int64)
    bad = np.empty((bounds.size - 1, 3), dtype=np.int64)
    kernels.tally(
        top_class, keys.bits, keys.neg_zero, keys.key_lo, keys.u_max, copies, bounds, counts, bad
    )
    _raise_bad_rows(bad, top_class, keys, num_classes)
    row = _first_bad(bad[:, kernels.BAD_COPIES])
    if row >= 0:
        raise DataError(
            f"copies keeps row {row} whose confidence is under the threshold {threshold}; "
            "pass the threshold select() used"
        )
    below, pool, kept, total = counts.sum(axis=0).T
    return SelectionSummary(
        threshold=float(threshold),
        below=below,
        pool=pool,
        kept=kept,
        dropped=pool - kept,
        duplicates=total - kept,
        copies=total,
    )


def _check_inputs(
    top_class: np.ndarray, confidence: np.ndarray, num_classes: int, threshold: float
) -> tuple[np.ndarray, _Keys]:
    top_class = np.ascontiguousarray(top_class)
    confidence = np.ascontiguousarray(confidence)
    if top_class.dtype not in _CLASS_DTYPES or top_class.ndim != 1:
        raise DataError(
            f"top_class must be a 1-D int16 or int32 array, got {top_class.dtype} with shape "
            f"{top_class.shape}; cast it with .astype(np.int32)"
        )
    if confidence.dtype not in _BITS or confidence.ndim != 1:
        raise DataError(
            f"confidence must be a 1-D float16 or float32 array, got {confidence.dtype} with "
            f"shape {confidence.shape}; cast it with .astype(np.float32)"
        )
    if top_class.size != confidence.size:
        raise DataError(
            f"top_class has {top_class.size} rows but confidence has {confidence.size}; "
            "pass the two columns of the same pseudo labels"
        )
    if not 1 <= num_classes <= np.iinfo(top_class.dtype).max + 1:
        raise DataError(
            f"num_classes must be in [1, {np.iinfo(top_class.dtype).max + 1}] for "
            f"{top_class.dtype} classes, got {num_classes}; pass the teacher's class count"
        )
    if not 0.0 <= threshold <= 1.0:
        raise DataError(f"threshold must be in [0, 1], got {threshold}; the paper uses 0.3")
    return top_class, _keys(confidence, threshold)


def _keys(confidence: np.ndarray, threshold: float) -> _Keys:
    """Bits of the confidences and the exact integer bounds for `threshold` in their dtype."""
    ftype, utype = confidence.dtype.type, _BITS[confidence.dtype].type
    lowest = ftype(threshold)
    if float(lowest) < threshold:
        lowest = np.nextafter(lowest, ftype(np.inf))
    key_lo = int(np.array(lowest).view(utype))
    key_one = int(np.array(ftype(1.0)).view(utype))
    sign = 1 << (8 * confidence.itemsize - 1)
    return _Keys(confidence, confidence.view(utype), key_lo, key_one - key_lo, sign)


def _check_targets(per_class: int | np.ndarray, num_classes: int) -> np.ndarray:
    targets = np.asarray(per_class)
    if targets.ndim == 0:
        targets = np.full(num_classes, targets)
    if targets.shape != (num_classes,) or not np.issubdtype(targets.dtype, np.integer):
        raise DataError(
            f"per_class must be an int or {num_classes} integer targets, got {targets.dtype} "
            f"with shape {targets.shape}; pass one target per class"
        )
    if (targets < 0).any():
        raise DataError(
            f"per_class must be >= 0, class {int(np.argmax(targets < 0))} has "
            f"{int(targets.min())}; use 0 to drop a class"
        )
    return targets.astype(np.int64)


def _plan_copies(
    pool: np.ndarray, targets: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: how many most confident samples get `high` copies; the rest of the pool `low`."""
    if targets is None:
        ones = np.ones_like(pool)
        return np.zeros_like(pool), ones, ones
    short = (pool > 0) & (pool < targets)
    per_sample, extra = np.divmod(targets, np.maximum(pool, 1))
    need = np.where(short, extra, np.minimum(targets, pool))
    high = np.where(short, per_sample + 1, 1)
    low = np.where(short, per_sample, 0)
    return need, high, low


def _copies_dtype(max_copies: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_copies <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise DataError(f"a sample would need {max_copies} copies; lower the per-class target")


def _chunk_bounds(n: int) -> np.ndarray:
    chunks = max(numba.get_num_threads(), -(-n // _CHUNK_ROWS), 1)
    return np.linspace(0, n, chunks + 1).astype(np.int64)


def _radix_plan(u_max: int, num_classes: int) -> tuple[int, int]:
    """Bits per radix pass and number of passes: few passes, each histogram within the budget."""
    bits = max(u_max.bit_length(), 1)
    budget_bins = HISTOGRAM_BUDGET // (4 * num_classes)
    max_width = max(min(MAX_DIGIT_BITS, budget_bins.bit_length() - 1), 4)
    levels = -(-bits // max_width)
    return -(-bits // levels), levels


def _radix_select(
    top_class: np.ndarray,
    keys: _Keys,
    hist: np.ndarray,
    need: np.ndarray,
    shift: int,
    width: int,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class the cut key and how many rows at it to take, so that `need` rows are over it.

    `hist` is the first pass over all classes; each further pass refines the classes whose
    boundary digit is split, `width` bits at a time, down to single keys.
    """
    num_chunks, num_classes = hist.shape[:2]
    cut = np.full(num_classes, keys.u_max, dtype=np.int64)
    take = np.zeros(num_classes, dtype=np.int64)
    rank_start = np.zeros((num_chunks, num_classes), dtype=np.int64)
    prefix = np.where(need > 0, 0, -1).astype(np.int64)
    need = need.copy()
    while True:
        kernels.choose(hist, need, prefix, shift, width, cut, take, rank_start)
        if shift == 0 or not (prefix >= 0).any():
            return cut, take, rank_start
        shift -= width
        hist = np.zeros((num_chunks, num_classes, 1 << width), dtype=np.uint32)
        _histogram(top_class, keys, shift, width, prefix, bounds, hist)


def _histogram(
    top_class: np.ndarray,
    keys: _Keys,
    shift: int,
    width: int,
    prefix: np.ndarray,
    bounds: np.ndarray,
    hist: np.ndarray,
) -> None:
    bad = np.empty((bounds.size - 1, 2), dtype=np.int64)
    kernels.histogram(
        top_class,
        keys.bits,
        keys.neg_zero,
        keys.key_lo,
        keys.u_max,
        shift,
        width,
        prefix,
        bounds,
        hist,
        bad,
    )
    _raise_bad_rows(bad, top_class, keys, prefix.size)


def _first_bad(rows: np.ndarray) -> int:
    found = rows[rows >= 0]
    return int(found.min()) if found.size else -1


def _raise_bad_rows(bad: np.ndarray, top_class: np.ndarray, keys: _Keys, num_classes: int) -> None:
    row = _first_bad(bad[:, kernels.BAD_CLASS])
    if row >= 0:
        raise DataError(
            f"top_class[{row}] = {top_class[row]} is outside [0, {num_classes}); "
            "pass the teacher's num_classes or fix the pseudo labels"
        )
    row = _first_bad(bad[:, kernels.BAD_CONFIDENCE])
    if row >= 0:
        raise DataError(
            f"confidence[{row}] = {keys.confidence[row]} is not a probability in [0, 1]; "
            "fix the pseudo labels (NaN or out-of-range values)"
        )
