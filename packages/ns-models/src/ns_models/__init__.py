"""ns_models: EfficientNet B0-B7/L2 via timm with Noisy Student noise, modes and safe weights.

The public names below load on first use (PEP 562), so `import ns_models.errors` (what the CLI
needs at start-up) does not import torch or timm.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ns_models.build import build_model
    from ns_models.card import ModelCard, card_lines, card_rows, model_card
    from ns_models.checkpoint import (
        CheckpointConfig,
        CheckpointFolder,
        load_checkpoint,
        open_checkpoint,
        read_config,
        save_checkpoint,
    )
    from ns_models.errors import ModelError
    from ns_models.export import export_checkpoint, export_onnx, export_torchscript
    from ns_models.ladder import (
        LADDER,
        SPECS,
        RungSpec,
        check_name,
        is_at_least,
        next_larger,
        rung,
    )
    from ns_models.modes import student_mode, teacher_mode
    from ns_models.noise import STOCHASTIC_DEPTH, ModelNoise, default_noise
    from ns_models.speed import SpeedConfig, apply_speed_knobs, autocast, prepare_images, unwrap
    from ns_models.weights import read_state_dict

_HOMES = {
    "card": ["ModelCard", "card_lines", "card_rows", "model_card"],
    "checkpoint": [
        "CheckpointConfig",
        "CheckpointFolder",
        "load_checkpoint",
        "open_checkpoint",
        "read_config",
        "save_checkpoint",
    ],
    "errors": ["ModelError"],
    "export": ["export_checkpoint", "export_onnx", "export_torchscript"],
    "ladder": ["LADDER", "SPECS", "RungSpec", "check_name", "is_at_least", "next_larger", "rung"],
    "modes": ["student_mode", "teacher_mode"],
    "noise": ["STOCHASTIC_DEPTH", "ModelNoise", "NoiseConfig", "default_noise"],
    "build": ["build_model"],
    "speed": ["SpeedConfig", "apply_speed_knobs", "autocast", "prepare_images", "unwrap"],
    "weights": ["read_state_dict"],
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [
    "LADDER",
    "SPECS",
    "STOCHASTIC_DEPTH",
    "CheckpointConfig",
    "CheckpointFolder",
    "ModelCard",
    "ModelError",
    "ModelNoise",
    "RungSpec",
    "SpeedConfig",
    "apply_speed_knobs",
    "autocast",
    "build_model",
    "card_lines",
    "card_rows",
    "check_name",
    "default_noise",
    "export_checkpoint",
    "export_onnx",
    "export_torchscript",
    "is_at_least",
    "load_checkpoint",
    "model_card",
    "next_larger",
    "open_checkpoint",
    "prepare_images",
    "read_config",
    "read_state_dict",
    "rung",
    "save_checkpoint",
    "student_mode",
    "teacher_mode",
    "unwrap",
]


def __getattr__(name: str) -> Any:
    """Import the module that holds `name` on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ns_models' has no attribute {name!r}")
    value = getattr(import_module(f"ns_models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
