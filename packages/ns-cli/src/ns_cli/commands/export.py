"""`ns export`: a checkpoint as ONNX, a timm Hub folder or TorchScript, preprocessing included."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Format(StrEnum):
    """What `ns export` writes."""

    onnx = "onnx"
    timm = "timm"
    torchscript = "torchscript"


def export_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint folder (ns or timm Hub layout, or local-dir:PATH).")
    ],
    out: Annotated[
        Path,
        typer.Argument(help="onnx: a .onnx file; torchscript: a .pt file; timm: a new folder."),
    ],
    fmt: Annotated[Format, typer.Option("--format", help="onnx, timm or torchscript.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
) -> None:
    """Export a checkpoint's weights (EMA when trained with EMA) in teacher mode for serving.

    Each output states its preprocessing (input size, mean, std, crop_pct, interpolation, class
    names): the ONNX file's metadata_props, a .json beside the .pt file, timm's config.json.

    Examples: ns export runs/b0/checkpoint --format onnx b0.onnx   ·   ns export runs/b0/checkpoint --format timm hub/b0   ·   ns export runs/b0/checkpoint --format torchscript b0.pt
    """

    def run() -> None:
        from ns_models.export import export_checkpoint

        for path in export_checkpoint(checkpoint, out, fmt.value, overwrite=overwrite):
            typer.echo(f"wrote {path}")

    run()


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
