"""Exports for serving: ONNX and TorchScript of the teacher-mode model, or a timm Hub folder.

Each export states its preprocessing (`CheckpointConfig.preprocessing()`: input size, mean, std,
crop_pct, interpolation, class names): in the ONNX file's metadata_props (JSON values), in a
`.json` beside the TorchScript file, in the timm folder's `config.json`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn

from ns_models.atomic import atomic_path
from ns_models.checkpoint import load_checkpoint, save_checkpoint
from ns_models.errors import ModelError
from ns_models.modes import teacher_mode
from ns_models.speed import unwrap

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
TORCHSCRIPT_INPUT = "float32 NCHW images, normalized as above; returns logits"
ExportFormat = Literal["onnx", "timm", "torchscript"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)


def export_onnx(
    model: nn.Module,
    path: Path,
    image_size: int,
    *,
    in_chans: int = 3,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write `model` (eval mode, input `images` NCHW float32, output `logits`) to `path`.

    The batch size is dynamic, the resolution fixed at `image_size`; `metadata` goes into the
    model's metadata_props. Written to a temporary file beside `path`, then renamed into place.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ModelError(f"ONNX path {path} should end in .onnx: rename it")
    example = _example(model, path, image_size, in_chans)
    batch = torch.export.Dim("batch", min=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with teacher_mode(model), torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            verbose=False,
        )
    assert program is not None  # dynamo=True without a file returns the program
    program.model.metadata_props.update(metadata or {})
    with atomic_path(path) as tmp:
        program.save(tmp, external_data=False)
    return path


def export_torchscript(model: nn.Module, path: Path, image_size: int, *, in_chans: int = 3) -> Path:
    """Trace `model` (eval mode, NCHW float32 in, logits out) into `path` with torch.jit.save.

    Any batch size runs; the resolution is fixed at `image_size`. Written to a temporary file
    beside `path`, then renamed into place.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ModelError(f"TorchScript path {path} should end in .pt: rename it")
    example = _example(model, path, image_size, in_chans)
    path.parent.mkdir(parents=True, exist_ok=True)
    with teacher_mode(model), torch.no_grad(), warnings.catch_warnings(), atomic_path(path) as tmp:
        # the user asked for TorchScript; PyTorch's deprecation notice is in docs/models.md
        warnings.filterwarnings("ignore", r"`torch\.jit\.", FutureWarning)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(tmp))
    return path


def _example(model: nn.Module, path: Path, image_size: int, in_chans: int) -> torch.Tensor:
    if not isinstance(image_size, int) or image_size < 1:
        raise ModelError(f"image_size={image_size!r} for {path}: pass a positive integer")
    param = next(unwrap(model).parameters())
    # Batch 2: torch.export specialises a dimension of size 1 instead of keeping it dynamic.
    return torch.randn(2, in_chans, image_size, image_size, device=param.device, dtype=param.dtype)


def export_checkpoint(
    checkpoint: Path | str, out: Path, fmt: ExportFormat, *, overwrite: bool = False
) -> list[Path]:
    """Export `checkpoint` (a folder or `local-dir:PATH`) as `fmt` to `out`; the files written.

    onnx: `out` ends in .onnx; torchscript: `out` ends in .pt, with `out.with_suffix(".json")`
    beside it; timm: `out` is a new folder with model.safetensors, config.json and README.md.
    """
    if fmt not in EXPORT_FORMATS:
        raise ModelError(f"export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ModelError(f"{out} exists: pick another path or pass --overwrite")
    model, config = load_checkpoint(checkpoint)
    model = unwrap(model)
    preprocessing = config.preprocessing()
    if fmt == "timm":
        directory = save_checkpoint(out, model, config, overwrite=overwrite)
        return sorted(directory.iterdir())
    if fmt == "onnx":
        metadata = {key: json.dumps(value) for key, value in preprocessing.items()}
        return [
            export_onnx(model, out, config.image_size, in_chans=config.in_chans, metadata=metadata)
        ]
    sidecar = out.with_suffix(".json")
    if sidecar.exists() and not overwrite:
        raise ModelError(f"{sidecar} exists: pick another path or pass --overwrite")
    export_torchscript(model, out, config.image_size, in_chans=config.in_chans)
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps({**preprocessing, "input": TORCHSCRIPT_INPUT}, indent=2))
    return [out, sidecar]
