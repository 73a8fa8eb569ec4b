"""`ns train`: a teacher on labeled shards, or a student on labeled + pseudo-labeled shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ns_cli.errors import run_reporting_errors
from ns_cli.options import Backend, Device, Seed
from ns_train.config import TrainConfig, replace
from ns_train.data import TrainInputs
from ns_train.trainer import train


def train_command(
    labeled: Annotated[
        Path, typer.Option("--labeled", help="Labeled shard set (from `ns shard`).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: checkpoint/, metrics.jsonl, plots.")
    ],
    eval_set: Annotated[
        Path | None, typer.Option("--eval", help="Labeled set evaluated during training.")
    ] = None,
    unlabeled: Annotated[
        Path | None, typer.Option("--unlabeled", help="Student: unlabeled shard set.")
    ] = None,
    pseudo_labels: Annotated[
        Path | None, typer.Option("--pseudo-labels", help="Student: folder from `ns label`.")
    ] = None,
    plan: Annotated[
        Path | None, typer.Option("--plan", help="Student: selection plan (plan.npy).")
    ] = None,
    init: Annotated[
        Path | None, typer.Option("--init", help="Start from this checkpoint's weights.")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="efficientnet_b0 … b7, efficientnet_l2 or any timm name.")
    ] = "efficientnet_b0",
    image_size: Annotated[
        int, typer.Option("--image-size", help="Training resolution in pixels.")
    ] = 224,
    epochs: Annotated[
        float, typer.Option("--epochs", help="Epochs (over the pseudo-labeled set for a student).")
    ] = 10.0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Labeled images per step and rank.")
    ] = 64,
    ratio: Annotated[
        int, typer.Option("--ratio", help="Student: unlabeled images per labeled image.")
    ] = 3,
    hard: Annotated[
        bool, typer.Option("--hard", help="Student: train on argmax pseudo labels.")
    ] = False,
    seed: Seed = 0,
    backend: Backend = "auto",
    device: Device = "auto",
) -> None:
    """Train a noised teacher (labeled data only) or a noised student (add --unlabeled and --pseudo-labels).

    Example: ns train --labeled shards/train --eval shards/val --out runs/teacher --epochs 30
    """

    def run() -> None:
        config = replace(
            TrainConfig(),
            model=model,
            image_size=image_size,
            epochs=epochs,
            batch_size=batch_size,
            unlabeled_ratio=ratio,
            soft_labels=not hard,
            seed=seed,
            backend=backend,
            device=device,
        )
        inputs = TrainInputs(labeled, eval_set, unlabeled, pseudo_labels, plan, init)
        result = train(config, inputs, out)
        summary = f"checkpoint: {result.checkpoint}  ({result.images_per_second:.0f} img/s)"
        if result.eval is not None:
            summary += f"  top-1 {100 * result.eval.top1:.1f}%  top-5 {100 * result.eval.top5:.1f}%"
        typer.echo(summary)

    run_reporting_errors(run)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
