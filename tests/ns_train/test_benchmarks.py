"""The parts of `ns bench` that are plain logic: rounds and ratios, the corpus, results files.
No speed is asserted anywhere (the candidates here return made-up numbers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ns_train.benchmarks.corpus import IMAGENET_MIX, MISSING_SKIMAGE, build_corpus, size_mix
from ns_train.benchmarks.results import Results, Section, compare, load, results_path, save
from ns_train.benchmarks.rounds import Candidate, interleaved, rows_of
from ns_train.benchmarks.scaling import core_counts, growth_exponent, linear_fit
from ns_train.benchmarks.scaling import notes as scaling_notes
from ns_train.benchmarks.scaling import plot as scaling_plot
from ns_train.benchmarks.selection import numpy_select, row_counts, synthetic
from ns_train.benchmarks.settings import BenchSettings
from ns_train.benchmarks.table import markdown
from ns_train.errors import TrainError


def test_rounds_interleave_and_ratios_are_taken_round_by_round() -> None:
    order: list[str] = []
    values = {"base": iter([10.0, 20.0, 40.0]), "ours": iter([20.0, 30.0, 40.0])}
    seconds = {"base": iter([4.0, 4.0, 4.0]), "ours": iter([1.0, 2.0, 8.0])}
    candidates = [
        Candidate("base", lambda: {"images/s": next(values["base"]), "s": next(seconds["base"])}),
        Candidate(
            "ours",
            lambda: {"images/s": next(values["ours"]), "s": next(seconds["ours"])},
            baseline="base",
        ),
    ]
    runs = interleaved(candidates, 3, order.append)
    assert order == ["base", "ours"] * 3
    rows = {(r.name, r.metric): r for r in rows_of(candidates, runs, {"s": "s"})}
    ours = rows[("ours", "images/s")]
    assert ours.ratios == [2.0, 1.5, 1.0] and ours.ratio == 1.5 and ours.median == 30.0
    assert rows[("ours", "s")].ratios == [4.0, 2.0, 0.5]  # seconds: baseline / candidate
    assert rows[("base", "images/s")].ratio is None


def test_imagenet_mix_shares_add_up_and_fixed_sizes_have_both_orientations() -> None:
    assert sum(share for _, share in IMAGENET_MIX) == pytest.approx(1.0)
    assert size_mix("640x480") == (((640, 480), 0.75), ((480, 640), 0.25))


def test_corpus_is_built_once_with_the_sizes_asked(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    corpus = build_corpus(tmp_path, "imagenet-mix", 6)
    files = sorted(corpus.images.glob("class*/*.jpg"))
    assert len(files) == 6 and corpus.megabytes > 0
    stamp = files[0].stat().st_mtime_ns
    assert build_corpus(tmp_path, "imagenet-mix", 6).directory == corpus.directory
    assert files[0].stat().st_mtime_ns == stamp
    from ns_data.shards.reader import ShardSet

    shards = ShardSet(corpus.shards(4))
    assert len(shards) == 6 and shards.num_classes == 10


def test_without_scikit_image_the_corpus_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(TrainError) as err:
        build_corpus(tmp_path, "500x375", 2)
    assert str(err.value) == MISSING_SKIMAGE and "--data" in MISSING_SKIMAGE


def test_settings_name_the_bad_option() -> None:
    with pytest.raises(TrainError, match="unknown benchmark 'x'"):
        BenchSettings(names=("shard", "x"))
    with pytest.raises(TrainError, match="--rows must be a positive integer"):
        BenchSettings(rows=0)


def test_numpy_baseline_keeps_the_target_per_class() -> None:
    top_class, confidence = synthetic(50_000, 20)
    copies = numpy_select(top_class, confidence, 20, 0.3, 100)
    per_class = [int(copies[top_class == c].sum()) for c in range(20)]
    assert per_class == [100] * 20
    assert row_counts(30_000_000) == [300_000, 3_000_000, 30_000_000]
    assert row_counts(20_000) == [20_000]


def results(value: float) -> Results:
    candidates = [
        Candidate("base", lambda: {"images/s": 1.0}),
        Candidate("ours", lambda: {"images/s": value}, "base"),
    ]
    rows = rows_of(candidates, interleaved(candidates, 1, lambda _: None), {})
    machine = {"host": "h", "cpu": "c", "usable_cores": 2, "python": "3", "versions": {}}
    section = Section("loader", "x vs y", {"images": 4}, rows)
    settings = {"scale": "smoke", "repeats": 1}
    return Results(
        "2026-12-01T00:00:00+00:00", "2026-12-01T00:01:00+00:00", settings, machine, [section]
    )


def test_results_files_round_trip_and_compare(tmp_path: Path) -> None:
    first = results_path(tmp_path, "h", "2026-12-01")
    save(results(2.0), first, markdown(results(2.0)))
    second = results_path(tmp_path, "h", "2026-12-01")
    assert (first.name, second.name) == ("h-2026-12-01.json", "h-2026-12-01-2.json")
    save(results(3.0), second, markdown(results(3.0)))
    changes, alone = compare(load(first), load(second))
    ours = next(c for c in changes if c.name == "ours")
    assert ours.change == pytest.approx(0.5) and ours.ratio_after == 3.0 and alone == []
    assert (
        "| ours | images/s | 3.00 | 3.00–3.00 | 3.00× | 3.00–3.00 |"
        in second.with_suffix(".md").read_text()
    )


def test_scaling_fits_say_how_a_cost_grows() -> None:
    linear = [(100, 2.0 + 0.01 * 100), (1000, 2.0 + 0.01 * 1000), (10000, 2.0 + 0.01 * 10000)]
    start_up, per_item = linear_fit(linear) or (0, 0)
    assert start_up == pytest.approx(2.0) and per_item == pytest.approx(0.01)
    assert growth_exponent([(10, 1.0), (100, 10.0)]) == pytest.approx(1.0)
    assert growth_exponent([(10, 1.0), (100, 100.0), (1000, 1e4)]) == pytest.approx(2.0)
    assert growth_exponent([(10, 1.0)]) is None and linear_fit([(10, 1.0)]) is None
    assert core_counts(1) == [1] and core_counts(2) == [1, 2] and core_counts(16) == [1, 2, 16]


def test_scaling_notes_and_plot_come_from_the_points(tmp_path: Path) -> None:
    series = {
        "shard": {"1": [(1000, 1.5), (10000, 10.5)], "2": [(1000, 1.0), (10000, 5.5)]},
        "select": {"1": [(10**6, 0.01), (10**7, 0.1)]},
    }
    notes = scaling_notes(series)
    assert notes[0] == (
        "shard on 1 core: 0.5 s start-up + 1 ms per image; "
        "seconds ∝ N^0.85 from 1,000 to 10,000 images; 83.3 core-hours for 300M images"
    )
    assert "shard: 2 cores 1.91× one at 10,000 images (ideal 2×)" in notes
    assert any(n.startswith("select on 1 core: ") and "300M rows" in n for n in notes)
    section = Section("scaling", "t", series={k: {c: [list(p) for p in v] for c, v in s.items()}
                                               for k, s in series.items()})  # fmt: skip
    out = scaling_plot(section, tmp_path / "scaling.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Section.from_dict(section.to_dict()).series == section.series


@pytest.mark.slow
def test_a_contention_environment_runs_in_a_process_of_its_own() -> None:
    from ns_train.benchmarks.contention import _child

    job = {"model": "efficientnet_b0", "size": 16, "batch": 2, "steps": 1, "rounds": 1,
           "settings": [("1 thread", "1")], "load": 1, "cores": 2}  # fmt: skip
    found: list[dict[str, object]] = []
    _child(job, {"OMP_WAIT_POLICY": "PASSIVE"}, found.append)
    assert [(r["setting"], r["load"], r["threads"]) for r in found] == [
        ("1 thread", 0, 1),
        ("1 thread", 1, 1),
    ]
    assert all(float(str(r["rate"])) > 0 for r in found)
