"""ONNX export for serving: the teacher-mode model with a dynamic batch dimension."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ns_models.errors import ModelError
from ns_models.modes import teacher_mode
from ns_models.speed import unwrap

INPUT_NAME = "images"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, path: Path, image_size: int, *, in_chans: int = 3) -> Path:
    """Write `model` (eval mode, input `images` NCHW float32, output `logits`) to `path`.

    The batch size is dynamic, the resolution fixed at `image_size`. Written to a temporary
    file beside `path`, then renamed into place.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ModelError(f"ONNX path {path} should end in .onnx: rename it")
    if not isinstance(image_size, int) or image_size < 1:
        raise ModelError(f"image_size={image_size!r} for {path}: pass a positive integer")
    model = unwrap(model)
    param = next(model.parameters())
    # Batch 2: torch.export specialises a dimension of size 1 instead of keeping it dynamic.
    example = torch.randn(2, in_chans, image_size, image_size, device=param.device)
    batch = torch.export.Dim("batch", min=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.onnx")
    try:
        with teacher_mode(model), torch.no_grad():
            torch.onnx.export(
                model,
                (example.to(param.dtype),),
                tmp,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
