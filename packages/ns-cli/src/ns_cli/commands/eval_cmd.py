"""`ns eval`: top-1/top-5 of a checkpoint on a labeled shard set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ns_cli.errors import run_reporting_errors
from ns_cli.options import Backend, Device
from ns_train.evaluate import evaluate


def eval_command(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint folder.")],
    data: Annotated[Path, typer.Option("--data", help="Labeled shard set.")],
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    backend: Backend = "auto",
    device: Device = "auto",
) -> None:
    """Evaluate a checkpoint (no noise, center crop at its resolution) on a labeled shard set.

    Example: ns eval --checkpoint runs/student/checkpoint --data shards/val
    """

    def run() -> None:
        result = evaluate(checkpoint, data, batch_size=batch_size, backend=backend, device=device)
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            typer.echo(
                f"top-1 {100 * result.top1:.2f}%  top-5 {100 * result.top5:.2f}%  ({result.count} images)"
            )

    run_reporting_errors(run)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
