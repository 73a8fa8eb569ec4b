"""Filtering and balancing: the numba plan against an obvious reference of the same rule."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ns_data.errors import DataError
from ns_data.labels import selection as selection
from ns_data.labels.selection import proportional_targets, select, summarize

# Near 0.3 on purpose: float16(0.3) is 0.30005, the float16 just under it 0.2998.
TIE_VALUES = (0.0, 0.1, 0.2998, 0.3, 0.30005, 0.5, 0.75, 1.0)


def reference(top_class, confidence, num_classes, threshold, per_class):
    """The rule spelled out: sort each class's pool by (confidence desc, row asc)."""
    conf = confidence.astype(np.float64)
    copies = np.zeros(top_class.size, dtype=np.int64)
    for c in range(num_classes):
        pool = [i for i in range(top_class.size) if top_class[i] == c and conf[i] >= threshold]
        pool.sort(key=lambda i: (-conf[i], i))
        if per_class is None:
            copies[pool] = 1
            continue
        target = int(per_class if np.ndim(per_class) == 0 else per_class[c])
        if len(pool) >= target:
            copies[pool[:target]] = 1
        elif pool:
            each, extra = divmod(target, len(pool))
            for rank, i in enumerate(pool):
                copies[i] = each + (rank < extra)
    return copies


def random_labels(rng, n, num_classes, dtype=np.float16):
    top_class = rng.integers(0, num_classes, n).astype(np.int16)
    return top_class, rng.beta(2, 2, n).astype(dtype)


@st.composite
def label_sets(draw, values=st.sampled_from(TIE_VALUES)):
    num_classes = draw(st.integers(1, 4))
    n = draw(st.integers(0, 120))
    top_class = np.array(draw(st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n)))
    conf = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    class_dtype = draw(st.sampled_from([np.int16, np.int32]))
    conf_dtype = draw(st.sampled_from([np.float16, np.float32]))
    threshold = draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]))
    per_class = draw(
        st.one_of(
            st.none(),
            st.integers(0, 80),
            st.lists(st.integers(0, 80), min_size=num_classes, max_size=num_classes).map(np.array),
        )
    )
    return (
        top_class.astype(class_dtype),
        conf.astype(conf_dtype),
        num_classes,
        threshold,
        per_class,
    )


@settings(max_examples=200, deadline=None)
@given(label_sets())
def test_matches_reference_with_many_ties(case):
    top_class, conf, num_classes, threshold, per_class = case
    copies = select(
        top_class, conf, num_classes=num_classes, threshold=threshold, per_class=per_class
    )
    expected = reference(top_class, conf, num_classes, threshold, per_class)
    np.testing.assert_array_equal(copies, expected)


@settings(max_examples=75, deadline=None)
@given(label_sets(values=st.floats(0.0, 1.0, width=32)))
def test_matches_reference_on_many_radix_passes(case):
    """A tiny histogram budget forces 4-bit digits: float32 confidences take up to 8 passes."""
    top_class, conf, num_classes, threshold, per_class = case
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "HISTOGRAM_BUDGET", 1)
        copies = select(
            top_class, conf, num_classes=num_classes, threshold=threshold, per_class=per_class
        )
    expected = reference(top_class, conf, num_classes, threshold, per_class)
    np.testing.assert_array_equal(copies, expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_exact_counts_prefer_confident_never_below_threshold(dtype):
    rng = np.random.default_rng(0)
    top_class, conf = random_labels(rng, 20_000, 7, dtype)
    targets = np.array([0, 1, 50, 900, 1_500, 3_000, 10_000])
    copies = select(top_class, conf, num_classes=7, per_class=targets)
    assert copies.dtype == np.uint8
    assert not copies[conf < 0.3].any()
    pool = np.bincount(top_class[conf >= 0.3], minlength=7)
    per_class = np.bincount(top_class, weights=copies, minlength=7)
    np.testing.assert_array_equal(per_class, np.where(pool > 0, targets, 0))
    for c in np.flatnonzero(pool >= targets):
        pooled = (top_class == c) & (conf >= 0.3)
        kept, dropped = conf[pooled & (copies > 0)], conf[pooled & (copies == 0)]
        assert (copies[pooled] <= 1).all()
        if kept.size and dropped.size:
            assert kept.min() >= dropped.max()


def test_duplicates_evenly_and_most_confident_get_the_extra_copy():
    top_class = np.zeros(4, dtype=np.int32)
    conf = np.array([0.5, 0.9, 0.2, 0.5], dtype=np.float32)
    copies = select(top_class, conf, num_classes=1, per_class=11)
    np.testing.assert_array_equal(copies, [4, 4, 0, 3])


def test_ties_at_the_boundary_keep_lower_rows_across_chunks():
    n = 100_001
    copies = select(
        np.zeros(n, dtype=np.int16), np.full(n, 0.5, np.float16), num_classes=1, per_class=60_000
    )
    np.testing.assert_array_equal(np.flatnonzero(copies), np.arange(60_000))


def test_filter_only_keeps_every_sample_at_or_over_the_threshold_once():
    conf = np.array([0.1, 0.3, 0.29999998, 1.0, -0.0], dtype=np.float32)
    copies = select(np.zeros(5, np.int16), conf, num_classes=1)
    np.testing.assert_array_equal(copies, [0, 1, 0, 1, 0])
    copies = select(np.zeros(5, np.int16), conf, num_classes=1, threshold=0.0)
    np.testing.assert_array_equal(copies, [1, 1, 1, 1, 1])


def test_wider_copies_dtype_when_one_sample_must_fill_a_class():
    copies = select(np.zeros(1, np.int16), np.ones(1, np.float16), num_classes=1, per_class=1_000)
    assert copies.dtype == np.uint16
    assert copies.tolist() == [1_000]


def test_empty_input():
    copies = select(np.zeros(0, np.int32), np.zeros(0, np.float32), num_classes=3, per_class=5)
    assert copies.shape == (0,)


def ok_inputs():
    return np.array([0, 1, 1], np.int32), np.array([0.5, 0.9, 0.2], np.float32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top_class": np.array([0, 1], np.int32)}, "rows"),
        ({"top_class": np.array([0, 2, 1], np.int32)}, "outside"),
        ({"top_class": np.array([0, -1, 1], np.int16)}, "outside"),
        ({"top_class": np.array([0, 1, 1], np.int64)}, "int16 or int32"),
        ({"confidence": np.array([0.5, np.nan, 0.2], np.float32)}, "probability"),
        ({"confidence": np.array([0.5, 1.5, 0.2], np.float16)}, "probability"),
        ({"confidence": np.array([0.5, -0.1, 0.2], np.float32)}, "probability"),
        ({"confidence": np.array([0.5, 0.9, 0.2])}, "float16 or float32"),
        ({"per_class": -1}, ">= 0"),
        ({"per_class": np.array([3, 4, 5])}, "targets"),
        ({"per_class": np.array([3.0, 4.0])}, "targets"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_input_raises_data_error(change, message):
    top_class, conf = ok_inputs()
    kwargs = {"top_class": top_class, "confidence": conf, "num_classes": 2, "per_class": 2}
    kwargs.update(change)
    with pytest.raises(DataError, match=message):
        select(**kwargs)


def test_summary_counts_and_is_json_able():
    top_class = np.array([0, 0, 0, 1, 1, 2], np.int16)
    conf = np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.2], np.float16)
    copies = select(top_class, conf, num_classes=3, per_class=np.array([1, 5, 2]))
    summary = summarize(top_class, conf, copies, num_classes=3, threshold=0.3)
    assert summary.pool.tolist() == [2, 2, 0]
    assert summary.below.tolist() == [1, 0, 1]
    assert summary.kept.tolist() == [1, 2, 0]
    assert summary.dropped.tolist() == [1, 0, 0]
    assert summary.duplicates.tolist() == [0, 3, 0]
    assert summary.copies.tolist() == [1, 5, 0]
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["totals"] == {
        "rows": 6,
        "below": 2,
        "pool": 4,
        "kept": 3,
        "dropped": 1,
        "duplicates": 3,
        "copies": 6,
    }


def test_summary_refuses_copies_under_the_threshold():
    top_class, conf = ok_inputs()
    with pytest.raises(DataError, match="under the threshold"):
        summarize(top_class, conf, np.ones(3, np.uint8), num_classes=2, threshold=0.3)


def test_proportional_targets_largest_remainder():
    assert proportional_targets(np.array([1, 1, 1]), 10).tolist() == [4, 3, 3]
    assert proportional_targets(np.array([10, 0, 30]), 7).tolist() == [2, 0, 5]
    uniform = proportional_targets(np.full(1000, 1300), 130_000_000)
    assert (uniform == 130_000).all()
    with pytest.raises(DataError):
        proportional_targets(np.array([0, 0]), 5)
    with pytest.raises(DataError):
        proportional_targets(np.array([1, -1]), 5)


def test_kernels_cache_to_a_writable_dir(tmp_path):
    """cache=True works where the package dir is read-only, given NUMBA_CACHE_DIR."""
    code = (
        "import numpy as np; from ns_data.labels.selection import select; "
        "print(select(np.zeros(3, np.int32), np.ones(3, np.float32), num_classes=1, per_class=4))"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[2", "1", "1]"]
    assert any(Path(tmp_path).rglob("*.nbi"))
