"""Channels-last vs the default NCHW layout for EfficientNet-B0 at the demo's 32 px on the CPU.

uv run --frozen python bench/bench_cpu_knobs.py
"""

from __future__ import annotations

import time

import timm
import torch


def train_rate(model: torch.nn.Module, images: torch.Tensor, steps: int = 10) -> float:
    """Images/s of SGD steps after three warm-up steps."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for step in range(steps + 3):
        if step == 3:
            started = time.perf_counter()
        optimizer.zero_grad()
        model(images).logsumexp(1).mean().backward()
        optimizer.step()
    return steps * len(images) / (time.perf_counter() - started)


@torch.inference_mode()
def infer_rate(model: torch.nn.Module, images: torch.Tensor, steps: int = 20) -> float:
    """Images/s of eval-mode forward passes after three warm-up passes."""
    model.eval()
    for step in range(steps + 3):
        if step == 3:
            started = time.perf_counter()
        model(images)
    return steps * len(images) / (time.perf_counter() - started)


def main() -> None:
    print("| layout | 32 px train img/s | 32 px infer img/s |\n|---|---:|---:|")
    for channels_last in (False, True):
        model = timm.create_model(
            "efficientnet_b0", num_classes=10, drop_rate=0.2, drop_path_rate=0.2
        )
        images = torch.randn(64, 3, 32, 32)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        name = "channels-last" if channels_last else "NCHW (default)"
        print(f"| {name} | {train_rate(model, images):.0f} | {infer_rate(model, images):.0f} |")


if __name__ == "__main__":
    main()
