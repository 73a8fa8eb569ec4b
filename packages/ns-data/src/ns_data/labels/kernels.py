"""numba kernels behind `ns_data.labels.selection`: a per-class radix select over confidence bits.

Confidences arrive as their IEEE bits (uint16 for float16, uint32 for float32). For values in
[0, 1] the bits order exactly like the values, so `u = bits - key_lo` (`key_lo`: the bits of the
smallest value at or over the threshold) is an exact integer rank of confidence: `u < 0` is under
the threshold, `u > u_max` is not a confidence in [0, 1] (negative, over 1, NaN). `-0.0` counts
as `0.0`. Rows are split into contiguous chunks, one per thread, each with its own histogram.
"""

import numpy as np
from numba import njit, prange

BAD_CLASS = 0
BAD_CONFIDENCE = 1
BAD_COPIES = 2


@njit(inline="always")
def _offset_key(bits, neg_zero, key_lo):
    key = np.int64(bits)
    if key == neg_zero:
        key = np.int64(0)
    return key - key_lo


@njit(parallel=True, cache=True)
def histogram(top_class, bits, neg_zero, key_lo, u_max, shift, width, prefix, bounds, hist, bad):
    """Count rows of chunk j, class c and digit `(u >> shift) & mask` into `hist[j, c, digit]`.

    Only rows over the threshold whose higher digits `u >> (shift + width)` equal `prefix[c]`
    count; `prefix[c] < 0` skips class c. `bad[j]` gets the first row of chunk j with a class out
    of range and the first with a confidence outside [0, 1] (-1: none).
    """
    num_classes = prefix.size
    mask = (1 << width) - 1
    for j in prange(bounds.size - 1):
        counts = hist[j]
        first_bad_class = -1
        first_bad_confidence = -1
        for i in range(bounds[j], bounds[j + 1]):
            c = np.int64(top_class[i])
            u = _offset_key(bits[i], neg_zero, key_lo)
            if c < 0 or c >= num_classes:
                if first_bad_class < 0:
                    first_bad_class = i
            elif u > u_max:
                if first_bad_confidence < 0:
                    first_bad_confidence = i
            elif u >= 0 and prefix[c] >= 0 and (u >> (shift + width)) == prefix[c]:
                counts[c, (u >> shift) & mask] += 1
        bad[j, BAD_CLASS] = first_bad_class
        bad[j, BAD_CONFIDENCE] = first_bad_confidence


@njit(cache=True)
def choose(hist, need, prefix, shift, width, cut, take, rank_start):
    """For each active class find the digit holding its `need`-th most confident row.

    A class is resolved when that digit is taken whole (`cut` = the key just under it) or when
    `shift == 0` (`cut` = that key, `take` = how many rows with exactly that key to keep, lowest
    rows first, `rank_start[j]` = how many of them lie in chunks before j). Otherwise its prefix
    grows by the digit and `need` shrinks to what is left to take inside it. Updates in place.
    """
    num_chunks, num_classes, num_bins = hist.shape
    for c in range(num_classes):
        if prefix[c] < 0:
            continue
        above = 0
        digit = num_bins - 1
        while True:
            count = 0
            for j in range(num_chunks):
                count += hist[j, c, digit]
            if above + count >= need[c]:
                break
            above += count
            digit -= 1
        rest = need[c] - above
        region = (prefix[c] << width) | digit
        if rest == count:
            cut[c] = (region << shift) - 1
            prefix[c] = -1
        elif shift == 0:
            cut[c] = region
            take[c] = rest
            before = 0
            for j in range(num_chunks):
                rank_start[j, c] = before
                before += hist[j, c, digit]
            prefix[c] = -1
        else:
            prefix[c] = region
            need[c] = rest


@njit(parallel=True, cache=True)
def assign(top_class, bits, neg_zero, key_lo, cut, take, rank_start, high, low, bounds, copies):
    """Write each row's copy count: `high[c]` over the class's cut, `low[c]` at or under it, 0 under
    the threshold; of the rows exactly at the cut the first `take[c]` (by row) get `high[c]`."""
    num_classes = cut.size
    for j in prange(bounds.size - 1):
        seen = np.zeros(num_classes, dtype=np.int64)
        for i in range(bounds[j], bounds[j + 1]):
            c = np.int64(top_class[i])
            u = _offset_key(bits[i], neg_zero, key_lo)
            if u < 0:
                copies[i] = 0
            elif u > cut[c]:
                copies[i] = high[c]
            elif u == cut[c]:
                copies[i] = high[c] if rank_start[j, c] + seen[c] < take[c] else low[c]
                seen[c] += 1
            else:
                copies[i] = low[c]


@njit(parallel=True, cache=True)
def tally(top_class, bits, neg_zero, key_lo, u_max, copies, bounds, counts, bad):
    """Per chunk and class count rows under the threshold, rows over it, rows kept and copies into
    `counts[j, c, 0..3]`; `bad[j]` as in `histogram`, plus the first row under the threshold with
    copies."""
    num_classes = counts.shape[1]
    for j in prange(bounds.size - 1):
        chunk = counts[j]
        first_bad_class = -1
        first_bad_confidence = -1
        first_bad_copies = -1
        for i in range(bounds[j], bounds[j + 1]):
            c = np.int64(top_class[i])
            u = _offset_key(bits[i], neg_zero, key_lo)
            k = np.int64(copies[i])
            if c < 0 or c >= num_classes:
                if first_bad_class < 0:
                    first_bad_class = i
            elif u > u_max:
                if first_bad_confidence < 0:
                    first_bad_confidence = i
            elif u < 0:
                chunk[c, 0] += 1
                if k > 0 and first_bad_copies < 0:
                    first_bad_copies = i
            else:
                chunk[c, 1] += 1
                if k > 0:
                    chunk[c, 2] += 1
                    chunk[c, 3] += k
        bad[j, BAD_CLASS] = first_bad_class
        bad[j, BAD_CONFIDENCE] = first_bad_confidence
        bad[j, BAD_COPIES] = first_bad_copies
