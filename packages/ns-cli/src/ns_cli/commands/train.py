"""`ns train`: a teacher on labeled shards, or a student on labeled + pseudo-labeled shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ns_cli.options import (
    AsJson,
    Labeled,
    OptionalUnlabeled,
    Overrides,
    PseudoLabels,
    Quiet,
    old_spelling,
    renamed,
)


def train_command(
    labeled: Labeled,
    out: Annotated[
        Path, typer.Option("--out", help="Job folder: checkpoint/, state/, metrics.jsonl, plots.")
    ],
    config_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG", help="TOML file of TrainConfig fields.", show_default=False
        ),
    ] = None,
    overrides: Overrides = None,
    eval_set: Annotated[
        Path | None, typer.Option("--eval", help="Labeled set evaluated during training.")
    ] = None,
    unlabeled: OptionalUnlabeled = None,
    pseudo_labels: PseudoLabels = None,
    plan: Annotated[
        Path | None, typer.Option("--plan", help="Student: selection plan (plan.npy).")
    ] = None,
    init: Annotated[
        Path | None, typer.Option("--init", help="Start from this checkpoint's weights.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the job in --out exactly.")
    ] = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    config: Annotated[Path | None, old_spelling("--config")] = None,
) -> None:
    """Train a noised teacher (labeled data only) or a noised student (add --unlabeled, --pseudo-labels).

    Fields (see ns_train.config.TrainConfig): model, image_size, epochs, batch_size (global),
    unlabeled_ratio, soft_labels, optim.*, noise.*, ema_decay, checkpoint_every, bf16, compile, ...

    Example: ns train --labeled shards/train --eval shards/val --out runs/b0 --set epochs=30

    Example: ns train job.toml --labeled shards/train --out runs/b0

    Several processes: torchrun --nproc-per-node 8 -m ns_cli train --labeled ... --out ...
    """
    from ns_train.config import TrainConfig
    from ns_train.config_files import resolve
    from ns_train.data import TrainInputs
    from ns_train.trainer import train

    file = renamed(config_file, config, "CONFIG", "--config", required=False)
    settings = resolve(TrainConfig, TrainConfig(), file, overrides or [])
    inputs = TrainInputs(labeled, eval_set, unlabeled, pseudo_labels, plan, init)
    result = train(settings, inputs, out, resume=resume, show_progress=not quiet)
    if as_json:
        scores = (
            None if result.eval is None else {"top1": result.eval.top1, "top5": result.eval.top5}
        )
        values = {"checkpoint": str(result.checkpoint), "steps": result.steps, "eval": scores}
        typer.echo(json.dumps({**values, "images_per_second": result.images_per_second}))
        return
    summary = f"checkpoint: {result.checkpoint}  ({result.images_per_second:.0f} img/s)"
    if result.eval is not None:
        summary += f"  top-1 {100 * result.eval.top1:.1f}%  top-5 {100 * result.eval.top5:.1f}%"
    typer.echo(summary)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
