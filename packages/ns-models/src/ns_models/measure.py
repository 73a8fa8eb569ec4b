"""Parameter and FLOP counts measured on the meta device: no memory, no compute, exact shapes."""

from __future__ import annotations

import functools
from typing import Any, cast

import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@functools.cache
def meta_model(name: str, num_classes: int = 1000) -> nn.Module:
    """`name` built on the meta device in eval mode (cached; weights have shapes, no data)."""
    with torch.device("meta"):
        return timm.create_model(name, pretrained=False, num_classes=num_classes).eval()


def count_parameters(name: str, num_classes: int = 1000) -> int:
    """Number of parameters of `name` with a `num_classes`-way classifier."""
    return sum(p.numel() for p in meta_model(name, num_classes).parameters())


@functools.cache
def count_flops(name: str, image_size: int, num_classes: int = 1000) -> int:
    """FLOPs of one forward pass of one image (a multiply-add counts 2), by FlopCounterMode."""
    model = meta_model(name, num_classes)
    image = torch.empty(1, 3, image_size, image_size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image)
    return counter.get_total_flops()


def timm_input_sizes(name: str) -> tuple[int, int]:
    """timm's default (train, test) resolution for `name`, from its pretrained config."""
    cfg = cast("dict[str, Any]", meta_model(name).pretrained_cfg)  # set by timm's builder, untyped
    train = int(cfg.get("input_size", (3, 224, 224))[-1])
    test = int((cfg.get("test_input_size") or (train,))[-1])
    return train, test
