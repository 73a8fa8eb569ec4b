"""`ns bench` end to end at its smallest sizes: the results file (machine description and every
row), the Markdown table, --compare, --data on the user's shard set and one-line errors.
Nothing here asserts a speed: on a shared CI machine the numbers mean nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from ns_cli.commands import bench
from ns_cli.errors import ReportingGroup
from ns_data.shards.writer import ShardSetWriter


def app() -> typer.Typer:
    """The `bench` command mounted alone, as `ns` mounts it."""
    ns = typer.Typer(cls=ReportingGroup)
    ns.callback()(lambda: None)
    bench.register(ns)
    return ns


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app(), ["bench", *map(str, args)])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ns bench --smoke shard select sizes scaling contention` once: 24 photos, 1 round, 20,000
    pseudo-label rows; scaling at 8 and 16 images; one step per contention setting."""
    pytest.importorskip("skimage", reason="the built corpus is cut from scikit-image's photos")
    root = tmp_path_factory.mktemp("bench")
    code, output = invoke(
        "--smoke", "shard", "select", "sizes", "scaling", "contention", "--rows", 20_000,
        "--workers", 2,
        "--out", root / "out", "--cache", root / "cache", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    assert "results: " in output
    (path,) = (root / "out").glob("*.json")
    return path


def test_results_file_has_the_machine_and_every_row(results_file: Path) -> None:
    results = json.loads(results_file.read_text())
    machine = results["machine"]
    assert machine["cpu"] and machine["usable_cores"] >= 1
    assert machine["versions"]["torch"] and machine["versions"]["webdataset"]
    assert len(machine["load_start"]) == 3 and len(machine["load_end"]) == 3
    assert results_file.name.startswith(f"{machine['host']}-{results['started'][:10]}")
    assert results["settings"]["scale"] == "smoke" and results["settings"]["repeats"] == 1
    sections = {s["name"]: s for s in results["sections"]}
    assert list(sections) == ["shard", "select", "sizes", "scaling", "contention"]
    shard_rows = {r["name"]: r for r in sections["shard"]["rows"]}
    assert set(shard_rows) == {
        f"{method}, {workers}"
        for method in (
            "plain ShardWriter loop",
            "plain loop + PIL decode",
            "ns shard",
            "ns shard --verify structure",
        )
        for workers in ("1 worker", "2 workers")
    }
    ours = shard_rows["ns shard, 2 workers"]
    assert ours["baseline"] == "plain ShardWriter loop, 2 workers"
    assert len(ours["values"]) == 1 and len(ours["ratios"]) == 1
    assert ours["min"] <= ours["median"] <= ours["max"]
    assert shard_rows["plain ShardWriter loop, 1 worker"]["ratio"] is None
    select_rows = [r["name"] for r in sections["select"]["rows"]]
    assert "numpy lexsort, 20,000 rows" in select_rows
    assert "numba select float16, 20,000 rows" in select_rows
    assert "20,000 rows: numba's copies equal numpy's: True" in sections["select"]["notes"]
    table = results_file.with_suffix(".md").read_text()
    assert "## shard: `ns shard` vs a plain webdataset.ShardWriter loop" in table
    assert "| ns shard, 2 workers | images/s |" in table


def test_sizes_are_measured_per_sample_from_the_files(results_file: Path) -> None:
    sizes = next(
        s for s in json.loads(results_file.read_text())["sections"] if s["name"] == "sizes"
    )
    per_sample = {r["name"].removesuffix(", per sample"): r["median"] for r in sizes["rows"]}
    photos = list((results_file.parent.parent / "cache").glob("*/images/*/*.jpg"))
    assert sizes["params"]["samples"] == len(photos) == 24
    assert per_sample["encoded images (in the tars)"] == sum(p.stat().st_size for p in photos) / 24
    assert (
        per_sample["tar format (headers, padding, label members)"] >= 2 * 512
    )  # jpg + cls headers
    assert 8 + 10 * 4 + 10 * 2 < per_sample["pseudo labels, top-10"] < 68 + 1000 / 24 * 4
    assert 1 < per_sample["selection plan (plan.npy)"] <= 1 + 128 / 24  # uint8 copies + header
    assert per_sample["loader sample table, in memory"] == 8 + 4 + 8 * 4  # id, shard, 4 offsets
    assert sizes["notes"][-1].startswith("at 300,000,000 samples: encoded images (in the tars) ")


def test_scaling_times_every_stage_per_core_count_and_plots_it(results_file: Path) -> None:
    from ns_data.cpus import usable_cores
    from ns_train.benchmarks.scaling import STAGES, core_counts

    scaling = next(
        s for s in json.loads(results_file.read_text())["sections"] if s["name"] == "scaling"
    )
    cores = [str(c) for c in core_counts(usable_cores())]
    assert list(scaling["series"]) == list(STAGES)
    for stage, by_cores in scaling["series"].items():
        assert list(by_cores) == cores
        sizes = [n for n, _ in by_cores["1"]]
        assert sizes == ([10_000, 20_000] if stage == "select" else [8, 16])
        assert all(seconds > 0 for points in by_cores.values() for _, seconds in points)
    rows = {(r["name"], r["metric"]): r["median"] for r in scaling["rows"]}
    seconds = rows[("shard, 1 core, 16 images", "seconds")]
    assert rows[("shard, 1 core, 16 images", "images/s")] == pytest.approx(16 / seconds)
    for stage in STAGES:  # the fits' signs are noise at these sizes: the unit tests check them
        assert any(note.startswith(f"{stage} on 1 core: ") for note in scaling["notes"])
    plot = results_file.with_name(f"{results_file.stem}-scaling.png")
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_contention_measures_each_setting_alone_and_loaded(results_file: Path) -> None:
    contention = next(
        s for s in json.loads(results_file.read_text())["sections"] if s["name"] == "contention"
    )
    rows = {r["name"]: r for r in contention["rows"]}
    busy = contention["params"]["load"].split()[0]
    settings = ("torch default threads", "1 thread", "threads = usable cores - load")
    for setting in settings:  # PASSIVE needs a process of its own: full scale only
        loaded = rows[f"{setting}, beside {busy} busy core" + ("s" if busy != "1" else "")]
        assert loaded["baseline"] == f"{setting}, alone" and loaded["ratio"] > 0
    assert len(rows) == 2 * len(settings)
    assert rows["1 thread, alone"]["note"] == "1 thread"
    assert "OMP_WAIT_POLICY=PASSIVE left out: full scale only" in contention["notes"]


def test_compare_prints_the_change_per_row(results_file: Path, tmp_path: Path) -> None:
    later = json.loads(results_file.read_text())
    for section in later["sections"]:
        for row in section["rows"]:
            row["values"] = [v * 2 for v in row["values"]]
    later["sections"][0]["rows"].pop()
    after = tmp_path / "later.json"
    after.write_text(json.dumps(later))
    code, output = invoke("--compare", results_file, after)
    assert code == 0, output
    assert "ns shard, 2 workers" in output and "+100.0%" in output
    assert "(only in A)" in output


def test_compare_refuses_a_file_that_is_not_results(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": 1}')
    code, output = invoke("--compare", tmp_path / "a.json", tmp_path / "a.json")
    assert code == 1
    assert (
        output.strip()
        == f"error: {tmp_path / 'a.json'} is not an ns bench results file (no format 'ns-bench/1')"
    )


def small_set(directory: Path, count: int = 12, labeled: bool = True) -> Path:
    """A shard set of noise JPEGs: what a user's --data could be (no scikit-image)."""
    rng = np.random.default_rng(0)
    classes = ["a", "b"] if labeled else None
    with ShardSetWriter(directory, "mine", classes=classes, max_count=4) as writer:
        for i in range(count):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
            label = i % 2 if labeled else None
            writer.add(f"s{i:03d}", buffer.getvalue(), "jpg", label=label, size=(64, 48))
    return directory


def test_data_runs_the_loader_on_the_users_shards(tmp_path: Path) -> None:
    shards = small_set(tmp_path / "shards")
    code, output = invoke(
        "--smoke", "loader", "--data", shards, "--workers", 1, "--out", tmp_path / "out",
        "--cache", tmp_path / "cache", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    (path,) = (tmp_path / "out").glob("*.json")
    (section,) = json.loads(path.read_text())["sections"]
    assert section["params"]["data"] == str(shards)
    names = [r["name"] for r in section["rows"]]
    assert "ImageLoader torch, RandAugment (2, 9)" in names
    assert "webdataset + PIL + torchvision v2, no RandAugment" in names
    assert not (tmp_path / "cache").exists()  # no corpus was built


@pytest.mark.slow
def test_label_and_train_call_the_engine(tmp_path: Path) -> None:
    """The engine's label() and train() through their public configs, on a user's set."""
    shards = small_set(tmp_path / "shards", count=16)
    code, output = invoke(
        "--smoke", "label", "train", "--data", shards, "--workers", 1, "--device", "cpu",
        "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    (path,) = (tmp_path / "out").glob("*.json")
    sections = {s["name"]: s for s in json.loads(path.read_text())["sections"]}
    label_rows = {(r["name"], r["metric"]) for r in sections["label"]["rows"]}
    assert ("ns label, torch loader", "images/s, loop only") in label_rows
    assert any(name.startswith("ns label --bf16, ") for name, _ in label_rows)  # on the CPU
    train_rows = {r["name"]: r for r in sections["train"]["rows"]}
    assert train_rows["ns train, torch loader"]["baseline"].startswith("plain timm loop")
    defaults = train_rows["plain timm loop, timm train.py's defaults (NCHW, float32)"]
    assert defaults["baseline"] == train_rows["ns train, torch loader"]["baseline"]
    notes = sections["train"]["notes"]
    assert any(n.startswith("ns train, torch loader, images/s: ") for n in notes), notes
    assert any(n.endswith("× timm train.py's defaults") for n in notes), notes
    assert any(n.startswith("training FLOPs per image") for n in notes), notes


def test_a_failing_part_keeps_what_ran_before_it(tmp_path: Path) -> None:
    shards = small_set(tmp_path / "unlabeled", labeled=False)
    code, output = invoke(
        "--smoke", "select", "train", "--rows", 20_000, "--data", shards,
        "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert code == 1 and len(output.strip().splitlines()) == 1
    assert output.startswith(f"error: {shards} is unlabeled: the train benchmark needs a labeled")
    (path,) = (tmp_path / "out").glob("*.json")
    assert f"what ran before it is in {path})" in output
    results = json.loads(path.read_text())
    assert [s["name"] for s in results["sections"]] == ["select"]
    assert results["settings"]["failed"].startswith("train: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: unknown benchmark 'nope': choose from shard, loader, label, train,"),
        (["--corpus", "2x2"], "error: unknown --corpus '2x2': choose from 500x375, 640x480,"),
        (["--repeats", "0"], "error: --repeats must be a positive integer, got 0"),
        (["--data", "missing"], "error: --data missing is not a shard set (no manifest.json)"),
    ],
)
def test_bad_options_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    code, output = invoke(*args, "--out", tmp_path / "out")
    assert code == 1
    assert output.startswith(message) and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
