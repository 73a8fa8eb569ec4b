"""`ns label`: pseudo labels from a teacher checkpoint, one file per source shard."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ns_cli.options import (
    AsJson,
    Backend,
    BatchSize,
    Device,
    LoaderWorkers,
    Quiet,
    old_spelling,
    renamed,
)


def label_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the pseudo labels.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="The teacher's checkpoint folder. [required]"),
    ] = None,
    unlabeled: Annotated[
        Path | None,
        typer.Option("--unlabeled", help="Unlabeled shard set to label (`ns shard`). [required]"),
    ] = None,
    topk: Annotated[int, typer.Option("--topk", help="Classes kept per image.")] = 10,
    temperature: Annotated[float, typer.Option("--temperature", help="Softmax temperature.")] = 1.0,
    batch_size: BatchSize = 128,
    bf16: Annotated[
        bool,
        typer.Option("--bf16", help="bfloat16 autocast (GPUs; CPUs with AMX or AVX512-BF16)."),
    ] = False,
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="NHWC memory format.")
    ] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete labels already in --out and relabel.")
    ] = False,
    workers: LoaderWorkers = None,
    backend: Backend = "auto",
    device: Device = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
    teacher: Annotated[Path | None, old_spelling("--teacher")] = None,
    data: Annotated[Path | None, old_spelling("--data")] = None,
) -> None:
    """Run the teacher without noise over unlabeled shards and store its top-k pseudo labels.

    Finished shards are skipped on a rerun; under torchrun each rank labels its own shards.
    A folder holding another teacher's labels is refused unless --overwrite.

    Example: ns label --checkpoint runs/teacher/checkpoint --unlabeled shards/unlabeled --out runs/labels

    Example: torchrun --nproc-per-node 8 -m ns_cli label --checkpoint T --unlabeled U --out L --bf16
    """
    from ns_data.loading.config import LoaderConfig
    from ns_train.config import LabelConfig
    from ns_train.labeler import label

    teacher_checkpoint = renamed(checkpoint, teacher, "--checkpoint", "--teacher", required=True)
    shards = renamed(unlabeled, data, "--unlabeled", "--data", required=True)
    config = LabelConfig(
        topk=topk,
        temperature=temperature,
        batch_size=batch_size,
        device=device,
        bf16=bf16,
        channels_last=channels_last,
        loader=LoaderConfig(backend=backend, workers=workers),  # type: ignore[arg-type]  # checked there
    )
    summary = label(
        teacher_checkpoint, shards, out, config, overwrite=overwrite, show_progress=not quiet
    )
    if as_json:
        typer.echo(json.dumps({"out": str(out), **asdict(summary)}))
    else:
        typer.echo(
            f"{summary.samples} images labeled in {out} ({summary.shards_labeled} shards now, "
            f"{summary.shards_skipped} already done, {summary.unreadable} unreadable), "
            f"mean confidence {summary.mean_confidence:.3f}, "
            f"{summary.images_per_second:.0f} img/s"
        )


def register(app: typer.Typer) -> None:
    app.command("label")(label_command)
