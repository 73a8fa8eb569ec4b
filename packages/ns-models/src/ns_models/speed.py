"""Opt-in speed knobs: channels-last memory, bf16 autocast and torch.compile."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class SpeedConfig:
    """Which speed knobs to switch on; all off by default."""

    channels_last: bool = False
    """Keep weights and images in NHWC memory order (faster convolutions on most backends)."""
    bf16: bool = False
    """Run forward passes under bfloat16 autocast (weights stay float32)."""
    compile: bool = False
    """Wrap the model in `torch.compile` (slow first steps while it compiles)."""


def apply_speed_knobs(model: nn.Module, cfg: SpeedConfig) -> nn.Module:
    """`model` in channels-last and/or compiled as `cfg` asks; use the returned module."""
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]  # an OptimizedModule, an nn.Module
    return model


def prepare_images(images: torch.Tensor, cfg: SpeedConfig) -> torch.Tensor:
    """A batch in the memory order `cfg` expects."""
    return images.to(memory_format=torch.channels_last) if cfg.channels_last else images


def autocast(cfg: SpeedConfig, device: torch.device | str = "cpu") -> torch.autocast:
    """bf16 autocast on `device` when `cfg.bf16`, else a disabled (no-op) autocast."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=cfg.bf16)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside torch.compile and DistributedDataParallel/DataParallel wrappers."""
    while True:
        if isinstance(inner := getattr(model, "_orig_mod", None), nn.Module):
            model = inner
        elif isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
