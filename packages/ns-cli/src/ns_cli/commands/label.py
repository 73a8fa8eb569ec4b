"""`ns label`: pseudo labels from a teacher checkpoint, one file per source shard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from ns_train.labeler import label

from ns_cli.errors import run_reporting_errors
from ns_cli.options import Backend, Device


def label_command(
    teacher: Annotated[Path, typer.Option("--teacher", help="Teacher checkpoint folder.")],
    data: Annotated[Path, typer.Option("--data", help="Unlabeled shard set.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the pseudo labels.")],
    topk: Annotated[int, typer.Option("--topk", help="Classes kept per image.")] = 10,
    temperature: Annotated[float, typer.Option("--temperature", help="Softmax temperature.")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 128,
    backend: Backend = "auto",
    device: Device = "auto",
) -> None:
    """Run the teacher without noise over unlabeled shards and store its top-k pseudo labels.

    Finished shards are skipped on a rerun; under torchrun each rank labels its own shards.

    Example: ns label --teacher runs/teacher/checkpoint --data shards/unlabeled --out runs/labels
    """

    def run() -> None:
        summary = label(
            teacher, data, out, topk=topk, temperature=temperature, batch_size=batch_size, backend=backend, device=device
        )
        typer.echo(
            f"{summary.samples} images labeled in {out} ({summary.shards_labeled} shards now, "
            f"{summary.shards_skipped} already done), mean confidence {summary.mean_confidence:.3f}"
        )

    run_reporting_errors(run)


def register(app: typer.Typer) -> None:
    app.command("label")(label_command)
