"""ns_models: EfficientNet B0-B7/L2 via timm with Noisy Student noise, modes and safe weights."""

from ns_models.card import ModelCard, card_lines, card_rows, model_card
from ns_models.checkpoint import (
    CheckpointConfig,
    load_checkpoint,
    read_config,
    save_checkpoint,
)
from ns_models.errors import ModelError
from ns_models.export import export_onnx
from ns_models.ladder import LADDER, SPECS, RungSpec, check_name, is_at_least, next_larger, rung
from ns_models.modes import student_mode, teacher_mode
from ns_models.noise import STOCHASTIC_DEPTH, NoiseConfig, default_noise
from ns_models.registry import build_model
from ns_models.speed import SpeedConfig, apply_speed_knobs, autocast, prepare_images, unwrap
from ns_models.weights import read_state_dict

__all__ = [
    "LADDER",
    "SPECS",
    "STOCHASTIC_DEPTH",
    "CheckpointConfig",
    "ModelCard",
    "ModelError",
    "NoiseConfig",
    "RungSpec",
    "SpeedConfig",
    "apply_speed_knobs",
    "autocast",
    "build_model",
    "card_lines",
    "card_rows",
    "check_name",
    "default_noise",
    "export_onnx",
    "is_at_least",
    "load_checkpoint",
    "model_card",
    "next_larger",
    "prepare_images",
    "read_config",
    "read_state_dict",
    "rung",
    "save_checkpoint",
    "student_mode",
    "teacher_mode",
    "unwrap",
]
