"""`ns info`: what a shard set, a pseudo-label folder, a checkpoint or a model name holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ns_cli.errors import run_reporting_errors
from ns_data.errors import DataError
from ns_data.manifest import MANIFEST_NAME


def describe_path(path: Path) -> list[str]:
    """Lines describing whatever `path` is; DataError when it is none of the known artifacts."""
    from ns_data.pseudo_labels import SUFFIX

    if (path / MANIFEST_NAME).is_file() or "://" in str(path):
        from ns_data.describe import describe_shard_set

        return describe_shard_set(path).lines()
    if (path / "config.json").is_file() and (path / "weights.safetensors").is_file():
        from ns_models.checkpoint import read_config

        config = read_config(path)
        return [
            f"{path}: checkpoint of {config.model_name}, {config.num_classes} classes, "
            f"{config.image_size} px, EMA weights: {config.ema}",
            f"noise: dropout {config.noise.drop_rate:g}, drop_path_rate {config.noise.drop_path_rate:g}",
            f"written by ns {config.ns_version}",
        ]
    if path.is_dir() and any(path.glob(f"*{SUFFIX}")):
        import numpy as np

        from ns_data.pseudo_labels import PseudoLabels

        store = PseudoLabels(path)
        top_class, confidence = store.top1()
        counts = np.bincount(top_class, minlength=store.num_classes)
        histogram = ", ".join(
            f"{n}: {c:,}" for n, c in zip(store.teacher.class_names, counts, strict=True)
        )
        return [
            f"{path}: pseudo labels for {len(store):,} images, top-{store.topk_class.shape[1]}, "
            f"by {store.teacher.model_name} ({store.teacher.checkpoint})",
            f"mean top-1 confidence {float(confidence.astype(np.float32).mean()):.3f}",
            f"pseudo-label classes: {histogram}",
        ]
    if not path.exists():
        raise DataError(f"{path} does not exist")
    raise DataError(f"{path} is not a shard set, checkpoint or pseudo-label folder made by ns")


def info_command(
    path: Annotated[
        Path | None, typer.Argument(help="A shard set, pseudo-label folder or checkpoint.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Print the card of this model instead.")
    ] = None,
) -> None:
    """Summarize a shard set, a pseudo-label folder, a checkpoint, or (--model) a model card.

    Examples: ns info shards/train   ·   ns info runs/demo/teacher/checkpoint   ·   ns info --model efficientnet_b3
    """

    def run() -> None:
        if model is not None:
            from ns_models.card import card_lines, model_card

            lines = card_lines(model_card(model))
        elif path is not None:
            lines = describe_path(path)
        else:
            raise DataError("give a PATH or --model NAME (see `ns info --help`)")
        for line in lines:
            typer.echo(line)

    run_reporting_errors(run)


def register(app: typer.Typer) -> None:
    app.command("info")(info_command)
