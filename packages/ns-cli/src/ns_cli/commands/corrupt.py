"""`ns corrupt`: ImageNet-C-style corrupted copies of an evaluation set (ns_data.robustness.corrupt)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console

from ns_cli.options import LimitPerClass, Quiet, Workers


def corrupt_command(
    data: Annotated[
        Path, typer.Argument(help="A labeled shard set or a class-folder tree of images.")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder: OUT/<corruption>/<severity>/.")],
    corruption: Annotated[
        list[str] | None,
        typer.Option(
            "--corruption",
            help="An ImageNet-C corruption, e.g. fog (repeatable; default: the 15 benchmark "
            "ones and the 4 extra ones).",
        ),
    ] = None,
    severity: Annotated[
        list[int] | None,
        typer.Option("--severity", help="A severity from 1 to 5 (repeatable; default: all five)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every image's corruption.")] = 0,
    workers: Workers = None,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="shards: one shard set per corruption and severity; imagenet-c: the released "
            "folders, OUT/<corruption>/<severity>/<class>/<key>.JPEG.",
        ),
    ] = "shards",
    limit_per_class: LimitPerClass = None,
    quality: Annotated[int, typer.Option("--quality", help="JPEG quality of the output.")] = 90,
    quiet: Quiet = False,
) -> None:
    """Write corrupted copies of DATA in OUT, one per corruption and severity (ImageNet-C style).

    Same seed, same bytes, whatever --workers; an interrupted run continues where it stopped
    when rerun. OUT/corruptions.json records the options and the library version.

    Examples:

        ns corrupt shards/val val-c

        ns corrupt shards/val val-c --corruption fog --corruption snow --severity 3 --severity 5

        ns corrupt photos/val val-c --layout imagenet-c --limit-per-class 10 --workers 8
    """

    def run() -> None:
        from ns_data.robustness.corrupt import (
            CORRUPTIONS,
            EXTRA_CORRUPTIONS,
            SEVERITIES,
            Layout,
            corrupt_set,
        )

        report = corrupt_set(
            data,
            out,
            corruptions=corruption or CORRUPTIONS + EXTRA_CORRUPTIONS,
            severities=severity or SEVERITIES,
            seed=seed,
            workers=workers,
            layout=cast(Layout, layout),
            quality=quality,
            limit_per_class=limit_per_class,
            progress=not quiet,
        )
        Console(highlight=False, soft_wrap=True, markup=False, emoji=False).print(
            f"{report.units_written} units written, {report.units_skipped} already done, "
            f"{report.images:,} images in {report.seconds:.1f} s: {report.out}"
        )

    run()


def register(app: typer.Typer) -> None:
    """Mount `ns corrupt` on the app."""
    app.command("corrupt")(corrupt_command)
