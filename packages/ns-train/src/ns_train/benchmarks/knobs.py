"""The model's speed knobs: channels-last, bf16 autocast and torch.compile against plain fp32.

Training steps (forward + backward, student mode with its noise on) and inference (eval mode,
`torch.inference_mode`) of a randomly initialized model on random tensors, after warm-up steps,
at each image side. torch.compile runs in the full scale only (its first step compiles for
minutes on a small CPU) and is left out, with a note, where it cannot compile here.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from ns_train.benchmarks.context import Context
from ns_train.benchmarks.results import Section
from ns_train.benchmarks.rounds import Candidate, Metrics, Row, rows_of

BASELINE = "fp32 NCHW"
UNITS = {"train images/s": "images/s", "inference images/s": "images/s"}


def knob_configs(compile_too: bool) -> dict[str, Any]:
    from ns_models import SpeedConfig

    knobs = {
        BASELINE: SpeedConfig(),
        "channels-last": SpeedConfig(channels_last=True),
        "bf16 autocast": SpeedConfig(bf16=True),
        "channels-last + bf16": SpeedConfig(channels_last=True, bf16=True),
    }
    if compile_too:
        knobs["torch.compile"] = SpeedConfig(compile=True)
    return knobs


def run(ctx: Context) -> Section:
    sizes = ctx.sizes
    knobs = knob_configs(sizes.thorough)
    notes = []
    if "torch.compile" in knobs:
        try:
            _rates(ctx, knobs["torch.compile"], sizes.knob_sizes[0], steps=1)
        except Exception as err:  # no C++ compiler, an unsupported op ...
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            notes.append(f"torch.compile left out: it fails here ({first[:160]})")
            del knobs["torch.compile"]
    ctx.begin("knobs")
    rows: list[Row] = []
    for side in sizes.knob_sizes:
        base = f"{BASELINE}, {side} px"
        candidates = [
            Candidate(
                f"{name}, {side} px",
                partial(_rates, ctx, config, side, sizes.step_count),
                None if name == BASELINE else base,
            )
            for name, config in knobs.items()
        ]
        rows += rows_of(candidates, ctx.rounds(candidates), UNITS)
    return Section(
        "knobs",
        "speed knobs (channels-last, bf16, torch.compile) vs plain fp32",
        {
            "model": ctx.settings.model,
            "image sides": ", ".join(map(str, sizes.knob_sizes)),
            "batch": sizes.step_batch,
            "timed steps": sizes.step_count,
            "device": ctx.device,
        },
        rows,
        notes,
    )


def _rates(ctx: Context, config: Any, side: int, steps: int) -> Metrics:
    """Train and inference images/s of one knob setting (two warm-up steps each)."""
    import torch
    import torch.nn.functional as F

    from ns_models import apply_speed_knobs, autocast, build_model, prepare_images

    device = torch.device(ctx.device)
    batch = ctx.sizes.step_batch
    torch.manual_seed(0)
    model = apply_speed_knobs(build_model(ctx.settings.model, 1000).to(device).train(), config)
    images = prepare_images(torch.randn(batch, 3, side, side, device=device), config)
    labels = torch.randint(0, 1000, (batch,), device=device)

    def train_step() -> None:
        with autocast(config, device):
            loss = F.cross_entropy(model(images).float(), labels)
        loss.backward()
        model.zero_grad(set_to_none=True)

    @torch.inference_mode()
    def infer_step() -> None:
        with autocast(config, device):
            model(images)

    train = _timed(train_step, steps, device) * batch
    model.eval()
    infer = _timed(infer_step, steps, device) * batch
    return {"train images/s": train, "inference images/s": infer}


def _timed(step: Any, steps: int, device: Any) -> float:
    """Steps per second after two warm-up steps."""
    import torch

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - started)
