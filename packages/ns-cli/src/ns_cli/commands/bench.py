"""`ns bench`: ns against the plain loops it replaces, measured in the same run on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ns_cli.options import Device, Quiet

BENCHMARKS = "shard, loader, label, train, select, sizes, scaling, contention, knobs"
CORPORA = "500x375, 640x480, 1024x768 or imagenet-mix"


def bench_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Sub-benchmarks to run (default: all): {BENCHMARKS}.", show_default=False
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Small sizes: all but scaling in under 2 minutes on 2 cores (name it to add it).",
        ),
    ] = False,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke", help="The smallest sizes: checks that everything runs (numbers mean little)."
        ),
    ] = False,
    repeats: Annotated[
        int | None,
        typer.Option("--repeats", help="Interleaved rounds (default: 3; 1 with --smoke)."),
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(
            "--rows", help="select: largest number of pseudo-label rows (default 30M, --quick 1M)."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Your shard set for loader, label and train (default: a built corpus)."
        ),
    ] = None,
    corpus: Annotated[
        str, typer.Option("--corpus", help=f"Photo sizes of the built corpus: {CORPORA}.")
    ] = "500x375",
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache", help="Where the built corpus is kept (default: ~/.cache/ns/bench)."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder of the results file (<host>-<date>.json and .md).")
    ] = Path("bench/results"),
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Loader and shard workers (default: usable cores, at most 8)."
        ),
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            "--compare",
            help="Print the change per row from results file A to B; runs nothing.",
            metavar="A B",
        ),
    ] = None,
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Time ns against the plain loop each part replaces, in interleaved rounds on this machine.

    Each row: the median and min-max over the rounds, and the ratio to its baseline in the same run.
    Writes the machine and every number to OUT/<host>-<YYYY-MM-DD>.json, the table beside it (.md).

    Example: ns bench --quick

    Example: ns bench loader train --data shards/train --repeats 5

    Example: ns bench --compare bench/results/a-2026-12-01.json bench/results/a-2026-12-08.json
    """

    from ns_cli.console import report_console

    console = report_console()
    if compare is not None:
        _compare(console, *compare)
        return
    from ns_train.benchmarks import NAMES, QUICK_NAMES, BenchSettings, run_benchmarks
    from ns_train.benchmarks.table import rich_tables

    settings = BenchSettings(
        names=tuple(names) if names else QUICK_NAMES if quick else NAMES,
        scale="smoke" if smoke else "quick" if quick else "full",
        repeats=repeats,
        rows=rows,
        data=data,
        cache=cache,
        corpus=corpus,
        workers=workers,
        device=device,
    )
    results, path = run_benchmarks(settings, out, show_progress=not quiet)
    for table in rich_tables(results):
        console.print(table)
        console.print()
    console.print(f"results: {path} (table: {path.with_suffix('.md')})", highlight=False)


def _compare(console: object, before: Path, after: Path) -> None:
    from rich.console import Console
    from rich.markup import escape

    from ns_train.benchmarks.results import compare, load
    from ns_train.benchmarks.table import comparison_table

    assert isinstance(console, Console)
    changes, alone = compare(load(before), load(after))
    console.print(comparison_table(changes, str(before), str(after)))
    for line in alone:
        console.print(escape(line), highlight=False)
    if not changes:
        console.print("no row is in both files", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
