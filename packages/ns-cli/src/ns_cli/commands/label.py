"""`ns label`: pseudo labels from a teacher checkpoint, one file per source shard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ns_cli.errors import run_reporting_errors
from ns_cli.options import Backend, Device, Quiet


def label_command(
    teacher: Annotated[Path, typer.Option("--teacher", help="Teacher checkpoint folder.")],
    data: Annotated[Path, typer.Option("--data", help="Unlabeled shard set.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the pseudo labels.")],
    topk: Annotated[int, typer.Option("--topk", help="Classes kept per image.")] = 10,
    temperature: Annotated[float, typer.Option("--temperature", help="Softmax temperature.")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 128,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16 autocast (GPU).")] = False,
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="NHWC memory format.")
    ] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete labels already in --out and relabel.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Loader workers (default: CPUs, at most 8).")
    ] = None,
    backend: Backend = "auto",
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Run the teacher without noise over unlabeled shards and store its top-k pseudo labels.

    Finished shards are skipped on a rerun; under torchrun each rank labels its own shards.
    A folder holding another teacher's labels is refused unless --overwrite.

    Example: ns label --teacher runs/teacher/checkpoint --data shards/unlabeled --out runs/labels

    Example: torchrun --nproc-per-node 8 -m ns_cli label --teacher T --data D --out L --bf16
    """

    def run() -> None:
        from ns_train.labeler import label

        summary = label(
            teacher,
            data,
            out,
            topk=topk,
            temperature=temperature,
            batch_size=batch_size,
            backend=backend,
            device=device,
            workers=workers,
            bf16=bf16,
            channels_last=channels_last,
            overwrite=overwrite,
            show_progress=not quiet,
        )
        typer.echo(
            f"{summary.samples} images labeled in {out} ({summary.shards_labeled} shards now, "
            f"{summary.shards_skipped} already done, {summary.unreadable} unreadable), "
            f"mean confidence {summary.mean_confidence:.3f}, "
            f"{summary.images_per_second:.0f} img/s"
        )

    run_reporting_errors(run)


def register(app: typer.Typer) -> None:
    app.command("label")(label_command)
