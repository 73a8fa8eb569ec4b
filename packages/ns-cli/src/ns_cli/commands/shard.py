"""`ns shard`: build a WebDataset shard set from an image folder, a list or existing shards."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console

from ns_cli.options import Quiet
from ns_data.errors import DataError

if TYPE_CHECKING:
    from ns_data.images.verify import Verify
    from ns_data.ingest.sources import SourceKind

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_bytes(text: str) -> int:
    """`1G`, `500M`, `64K` or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", text.upper())
    if match is None:
        raise DataError(f"--max-bytes {text!r} is not a size; write e.g. 1G, 500M or 1000000")
    return int(float(match[1]) * _UNITS[match[2]])


def shard(
    source: Annotated[
        Path,
        typer.Argument(
            help="ImageFolder tree, image folder, .csv/.jsonl list, or .tar/.tar.gz/.tgz shards."
        ),
    ],
    out: Annotated[str, typer.Argument(help="Output folder or fsspec URL (e.g. file:///data/x).")],
    classes: Annotated[
        Path | None, typer.Option("--classes", help="Class names, one per line, in index order.")
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="auto, imagefolder, folder, list or webdataset.")
    ] = "auto",
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Shard name prefix (default: OUT's name).")
    ] = None,
    max_count: Annotated[int, typer.Option("--max-count", help="Most samples per shard.")] = 10_000,
    max_bytes: Annotated[str, typer.Option("--max-bytes", help="Most bytes per shard.")] = "1G",
    max_side: Annotated[
        int | None, typer.Option("--max-side", help="Re-encode images with a longer side.")
    ] = None,
    quality: Annotated[int, typer.Option("--quality", help="Quality of re-encoded images.")] = 90,
    verify: Annotated[
        str,
        typer.Option(
            "--verify",
            help="decode: decode every image (JPEG at 1/8 scale); structure: header and file "
            "structure only, 2-3x faster, misses corrupt compressed data.",
        ),
    ] = "decode",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (default: cores).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing shard set in OUT.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Stop at a damaged source tar (default: keep its samples before the damage "
            "and list it in OUT/rejected.jsonl).",
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Build a WebDataset shard set (tars, DALI indexes, manifest.json) from SOURCE in OUT.

    Every image is verified to decode (or, with --verify structure, checked for a sound
    header and structure); bad files, refused tar members and damaged tars are listed in
    OUT/rejected.jsonl. Same input, same bytes; an interrupted run continues where it
    stopped when rerun. A second `ns shard` on the same OUT is refused while one runs.

    Examples:

        ns shard photos/train shards/train

        ns shard labels.csv shards/train --classes classes.txt --max-count 5000

        ns shard raw/ file:///data/unlabeled --max-side 512 --quality 90 --workers 8

        ns shard wds-shards/ shards/resharded --strict
    """

    from ns_data.ingest.pipeline import ShardConfig, shard_images
    from ns_data.shards.describe import describe_shard_set
    from ns_data.shards.output_dir import REJECTED_NAME

    config = ShardConfig(
        prefix=prefix,
        kind=cast("SourceKind", kind),
        classes_file=classes,
        max_count=max_count,
        max_bytes=parse_bytes(max_bytes),
        max_side=max_side,
        quality=quality,
        verify=cast("Verify", verify),
        workers=workers,
        overwrite=overwrite,
        strict=strict,
    )
    report = shard_images(source, out, config, progress=not quiet)
    console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
    for line in describe_shard_set(out).lines():
        console.print(line)
    if report.rejected:
        console.print(f"{report.rejected:,} files rejected: see {out}/{REJECTED_NAME}")
    if report.damaged:
        names = ", ".join(report.damaged[:3]) + (", ..." if len(report.damaged) > 3 else "")
        console.print(
            f"{len(report.damaged):,} damaged source tars ({names}): their samples before "
            f"the damage were kept; see {out}/{REJECTED_NAME} (--strict stops instead)"
        )
    samples = report.manifest.num_samples
    console.print(
        f"{report.shards_written} shards written, {report.shards_reused} reused, "
        f"{report.seconds:.1f} s ({samples / report.seconds:,.0f} img/s, "
        f"{report.bytes_read / 1e6 / report.seconds:,.1f} MB/s read)"
    )


def register(app: typer.Typer) -> None:
    """Mount `ns shard` on the app."""
    app.command("shard")(shard)
