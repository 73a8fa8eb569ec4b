"""Forward+backward images/s of one model with each speed knob, printed as a markdown table.

uv run --frozen python bench/bench_models.py                      # efficientnet_b0, 64/128 px
uv run --frozen python bench/bench_models.py --sizes 224 --batch 64 --device cuda
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from ns_models import SpeedConfig, apply_speed_knobs, autocast, build_model, prepare_images

KNOBS = {
    "fp32": SpeedConfig(),
    "channels_last": SpeedConfig(channels_last=True),
    "bf16 autocast": SpeedConfig(bf16=True),
    "channels_last + bf16": SpeedConfig(channels_last=True, bf16=True),
    "torch.compile": SpeedConfig(compile=True),
}


def images_per_second(
    name: str, size: int, batch: int, cfg: SpeedConfig, device: torch.device, steps: int
) -> float:
    """Training-step throughput (student mode, noise on), after warm-up steps."""
    torch.manual_seed(0)
    model = apply_speed_knobs(build_model(name, 1000).to(device).train(), cfg)
    images = prepare_images(torch.randn(batch, 3, size, size, device=device), cfg)
    labels = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        with autocast(cfg, device):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(3 if cfg.compile else 2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--knobs", nargs="+", choices=list(KNOBS), default=list(KNOBS))
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"{args.model}, batch {args.batch}, forward+backward, {args.steps} timed steps, "
        f"{device.type} ({where or 'cpu'}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}\n"
    )
    print("| knob | " + " | ".join(f"{s} px img/s" for s in args.sizes) + " |")
    print("|---|" + "---:|" * len(args.sizes))
    baseline: dict[int, float] = {}
    for knob in args.knobs:
        cells = []
        for size in args.sizes:
            rate = images_per_second(args.model, size, args.batch, KNOBS[knob], device, args.steps)
            baseline.setdefault(size, rate)
            cells.append(f"{rate:,.0f} ({rate / baseline[size]:.2f}x)")
        print(f"| {knob} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
