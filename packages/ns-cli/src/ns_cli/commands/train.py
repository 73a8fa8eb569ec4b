"""`ns train`: a teacher on labeled shards, or a student on labeled + pseudo-labeled shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ns_cli.errors import run_reporting_errors
from ns_cli.options import Quiet


def train_command(
    labeled: Annotated[
        Path, typer.Option("--labeled", help="Labeled shard set (from `ns shard`).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Job folder: checkpoint/, state/, metrics.jsonl, plots.")
    ],
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file of TrainConfig fields.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: --set epochs=30 --set optim.name=sgd."),
    ] = None,
    eval_set: Annotated[
        Path | None, typer.Option("--eval", help="Labeled set evaluated during training.")
    ] = None,
    unlabeled: Annotated[
        Path | None, typer.Option("--unlabeled", help="Student: the unlabeled shard set.")
    ] = None,
    pseudo_labels: Annotated[
        Path | None, typer.Option("--pseudo-labels", help="Student: `ns label` output.")
    ] = None,
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
) -> None:
    """Train a noised teacher (labeled data only) or a noised student (add --unlabeled, --pseudo-labels).

    Fields (see ns_train.config.TrainConfig): model, image_size, epochs, batch_size (global),
    unlabeled_ratio, soft_labels, optim.*, noise.*, ema_decay, checkpoint_every, bf16, compile, ...

    Example: ns train --labeled shards/train --eval shards/val --out runs/b0 --set epochs=30

    Several processes: torchrun --nproc-per-node 8 -m ns_cli train --labeled ... --out ...
    """

    def run() -> None:
        from ns_train.config import TrainConfig
        from ns_train.config_files import resolve
        from ns_train.data import TrainInputs
        from ns_train.trainer import train

        settings = resolve(TrainConfig, TrainConfig(), config, overrides or [])
        inputs = TrainInputs(labeled, eval_set, unlabeled, pseudo_labels, plan, init)
        result = train(settings, inputs, out, resume=resume, show_progress=not quiet)
        summary = f"checkpoint: {result.checkpoint}  ({result.images_per_second:.0f} img/s)"
        if result.eval is not None:
            summary += f"  top-1 {100 * result.eval.top1:.1f}%  top-5 {100 * result.eval.top5:.1f}%"
        typer.echo(summary)

    run_reporting_errors(run)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
