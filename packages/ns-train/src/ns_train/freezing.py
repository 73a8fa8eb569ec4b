"""Freeze the shallow layers of a model (the paper's fine-tuning of L2 at test resolution).

For timm EfficientNets (and any model with `conv_stem`, `bn1` and `blocks`) the stem and the
first N blocks stop learning: no gradients, and their batch norms keep their running statistics.
"""

from __future__ import annotations

import torch

from ns_train.errors import TrainError


def shallow_modules(model: torch.nn.Module, blocks: int) -> list[torch.nn.Module]:
    """The stem and the first `blocks` stages of an EfficientNet-like model."""
    stages = getattr(model, "blocks", None)
    if stages is None or not hasattr(model, "conv_stem"):
        raise TrainError(
            f"freeze_blocks needs an EfficientNet-like model (conv_stem, blocks); {type(model).__name__} has neither"
        )
    if not 0 <= blocks <= len(stages):
        raise TrainError(f"freeze_blocks={blocks}: the model has {len(stages)} stages")
    return [model.conv_stem, model.bn1, *list(stages)[:blocks]]


def freeze(modules: list[torch.nn.Module]) -> None:
    """Stop gradients through `modules`."""
    for module in modules:
        module.requires_grad_(False)


def keep_statistics(modules: list[torch.nn.Module]) -> None:
    """Put the frozen modules (their batch norms) in eval mode; call after every `train()`."""
    for module in modules:
        module.eval()
