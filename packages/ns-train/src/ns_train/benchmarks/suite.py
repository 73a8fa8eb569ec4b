"""Run a set of sub-benchmarks and write the results file and its Markdown table."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path

from ns_data.cpus import usable_cores
from ns_data.errors import DataError
from ns_train.benchmarks.context import Context, bench_progress
from ns_train.benchmarks.machine import describe, load_average
from ns_train.benchmarks.results import Results, Section, results_path, save
from ns_train.benchmarks.settings import NAMES, BenchSettings
from ns_train.benchmarks.table import markdown
from ns_train.errors import TrainError

MODULES = {
    "shard": "shard",
    "loader": "loader",
    "label": "label",
    "train": "train",
    "select": "selection",
    "sizes": "sizes",
    "scaling": "scaling",
    "contention": "contention",
    "knobs": "knobs",
}
"""Sub-benchmark name → its module under `ns_train.benchmarks`."""
assert tuple(MODULES) == NAMES


def run_benchmarks(
    settings: BenchSettings, out_dir: Path, *, show_progress: bool = True
) -> tuple[Results, Path]:
    """Run `settings.names` in order; write `out_dir/<host>-<YYYY-MM-DD>.json` (UTC date) and
    the Markdown table beside it (`.md`); return the results and the JSON file's path."""
    if settings.data is not None and not (Path(settings.data) / "manifest.json").exists():
        raise TrainError(
            f"--data {settings.data} is not a shard set (no manifest.json): run ns shard first"
        )
    device = _device(settings.device)
    workers = settings.workers or min(usable_cores(), 8)
    started = datetime.now(UTC)
    load_start = load_average()
    machine = describe()
    sections: list[Section] = []
    part_seconds: dict[str, float] = {}
    failed: tuple[str, BaseException] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="ns-bench-") as work,
        bench_progress(show_progress) as progress,
    ):
        ctx = Context(settings, Path(work), device, workers, progress)
        for name in dict.fromkeys(settings.names):
            module = import_module(f"ns_train.benchmarks.{MODULES[name]}")
            part_started = time.perf_counter()
            try:
                sections.append(module.run(ctx))
            except Exception as err:  # keep what was measured; the error is raised below
                failed = (name, err)
                break
            part_seconds[name] = round(time.perf_counter() - part_started, 1)
            ctx.done()
    machine["load_start"], machine["load_end"] = load_start, load_average()
    finished = datetime.now(UTC)
    results = Results(
        started=started.isoformat(timespec="seconds"),
        finished=finished.isoformat(timespec="seconds"),
        settings={
            "names": list(dict.fromkeys(settings.names)),
            "scale": settings.scale,
            "repeats": settings.rounds,
            "rows": settings.rows or settings.sizes.select_rows,
            "data": None if settings.data is None else str(settings.data),
            "corpus": settings.corpus,
            "workers": workers,
            "device": device,
            "model": settings.model,
            "seconds": round((finished - started).total_seconds(), 1),
            "seconds per part": part_seconds,
            "failed": None if failed is None else f"{failed[0]}: {failed[1]}",
        },
        machine=machine,
        sections=sections,
    )
    if failed is not None and not sections:
        raise failed[1]
    path = save(
        results,
        results_path(out_dir, machine["host"], started.date().isoformat()),
        markdown(results),
    )
    draw_plots(results, path)
    if failed is not None:
        where, error = failed
        if isinstance(error, TrainError | DataError):
            message = f"{error} (ns bench {where}; what ran before it is in {path})"
            raise TrainError(message) from error
        raise error
    return results, path


def draw_plots(results: Results, path: Path) -> list[Path]:
    """Each section whose module has a `plot(section, out)`, drawn beside the results file as
    `<results stem>-<section>.png`."""
    drawn = []
    for section in results.sections:
        plot = getattr(import_module(f"ns_train.benchmarks.{MODULES[section.name]}"), "plot", None)
        if plot is not None:
            drawn.append(plot(section, path.with_name(f"{path.stem}-{section.name}.png")))
    return drawn


def _device(name: str) -> str:
    """`auto` → `cuda` when a GPU is visible, else `cpu`; other names are checked."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise TrainError(f"unknown --device {name!r}: use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {name} asks for a GPU, and no CUDA GPU is visible")
    if device.type not in ("cpu", "cuda"):
        raise TrainError(f"--device {name}: ns bench runs on cpu or cuda")
    return name
