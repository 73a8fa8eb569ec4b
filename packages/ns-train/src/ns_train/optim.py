"""Optimizer and per-step learning-rate schedule from an `OptimConfig` (timm's optimizer factory).

RMSProp is timm's `rmsproptf`, the TensorFlow variant the paper trained with (epsilon inside the
square root); batch-norm parameters and biases get no weight decay.
"""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2
from torch.optim.lr_scheduler import LambdaLR

from ns_train.config import OptimConfig


def peak_lr(config: OptimConfig, global_batch: int) -> float:
    """The paper's linear scaling: `lr_per_2048` × global batch / 2048."""
    return config.lr_per_2048 * global_batch / 2048


def build_optimizer(
    model: torch.nn.Module, config: OptimConfig, global_batch: int
) -> torch.optim.Optimizer:
    """RMSProp (decay 0.9, momentum 0.9, eps 1e-3), SGD (nesterov) or AdamW with filtered decay."""
    lr = peak_lr(config, global_batch)
    if config.name == "rmsprop":
        return create_optimizer_v2(
            model,
            "rmsproptf",
            lr=lr,
            weight_decay=config.weight_decay,
            momentum=0.9,
            alpha=0.9,
            eps=1e-3,
        )
    if config.name == "sgd":
        return create_optimizer_v2(
            model, "sgd", lr=lr, weight_decay=config.weight_decay, momentum=0.9
        )
    return create_optimizer_v2(model, "adamw", lr=lr, weight_decay=config.weight_decay)


def build_schedule(
    optimizer: torch.optim.Optimizer, config: OptimConfig, steps_per_epoch: int, total_steps: int
) -> LambdaLR:
    """Linear warm-up, then step decay (×rate every `decay_epochs`) or cosine to zero; per step."""
    warmup = config.warmup_epochs * steps_per_epoch
    decay_every = max(1.0, config.decay_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "cosine":
            progress = (step - warmup) / max(1.0, total_steps - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return config.decay_rate ** math.floor((step - warmup) / decay_every)

    return LambdaLR(optimizer, factor)
