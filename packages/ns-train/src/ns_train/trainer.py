"""Train a teacher (labeled data) or a noised student (labeled + pseudo-labeled data).

    result = train(TrainConfig(model="efficientnet_b0"), TrainInputs(labeled=Path("shards/train")), out)

Each student step takes a labeled batch and an unlabeled batch `unlabeled_ratio` times larger in
one forward pass; loss = CE(labels, smoothing) + CE(pseudo labels, soft or hard). The EMA weights
are evaluated, plotted and saved as the checkpoint that labels the next round.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from ns_data.atomic import write_json
from ns_data.loader import Batch
from ns_models import CheckpointConfig, build_model, load_checkpoint, save_checkpoint, student_mode
from ns_models import NoiseConfig as ModelNoise
from ns_models import default_noise
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from ns_train.config import TrainConfig, to_dict
from ns_train.data import JobData, TrainInputs
from ns_train.evaluate import EvalResult, evaluate_model
from ns_train.metrics import MetricsLog
from ns_train.optim import build_optimizer, build_schedule
from ns_train.plots import plot_training
from ns_train.progress import job_progress
from ns_train.runtime import Runtime, start, stop

CHECKPOINT_DIR = "checkpoint"


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Where the checkpoint went, the last evaluation and the measured throughput."""

    checkpoint: Path
    eval: EvalResult | None
    steps: int
    images_per_second: float
    wall_seconds: float


def model_noise(config: TrainConfig) -> ModelNoise:
    """The model's noise: the config's values, or the paper's default for this model size."""
    default = default_noise(config.model)
    return ModelNoise(
        drop_rate=default.drop_rate if config.noise.drop_rate is None else config.noise.drop_rate,
        drop_path_rate=(
            default.drop_path_rate
            if config.noise.drop_path_rate is None
            else config.noise.drop_path_rate
        ),
    )


def build(
    config: TrainConfig, num_classes: int, init: Path | None, runtime: Runtime
) -> torch.nn.Module:
    """The noised model on its device, initialized from `init` when given."""
    model = build_model(config.model, num_classes, noise=model_noise(config))
    if init is not None:
        source, meta = load_checkpoint(init, num_classes=num_classes)
        model.load_state_dict(source.state_dict())
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    return model.to(runtime.device, memory_format=memory_format)


def train(
    config: TrainConfig, inputs: TrainInputs, out_dir: Path, *, show_progress: bool = True
) -> TrainResult:
    """Run one training job to the end and write `out_dir/checkpoint` (EMA weights when EMA is on)."""
    runtime = start(config.device, config.seed)
    try:
        return _train(config, inputs, Path(out_dir), runtime, show_progress)
    finally:
        stop(runtime)


def _train(
    config: TrainConfig, inputs: TrainInputs, out_dir: Path, runtime: Runtime, show: bool
) -> TrainResult:
    data = JobData(config, inputs, runtime)
    num_classes = len(data.class_names)
    model = build(config, num_classes, inputs.init, runtime)
    ema = ModelEmaV3(model, decay=config.ema_decay) if config.ema_decay else None
    step_model: torch.nn.Module = model
    if config.compile:
        step_model = torch.compile(model)  # type: ignore[assignment]
    if runtime.distributed:
        step_model = DistributedDataParallel(step_model)
    global_batch = (
        config.batch_size
        * runtime.world_size
        * (1 + (config.unlabeled_ratio if data.unlabeled else 0))
    )
    optimizer = build_optimizer(model, config.optim, global_batch)
    steps_per_epoch = data.steps_per_epoch
    total_steps = math.ceil(config.epochs * steps_per_epoch)
    schedule = build_schedule(optimizer, config.optim, steps_per_epoch, total_steps)
    eval_every = max(1, round(config.eval_every * steps_per_epoch))
    log = MetricsLog(out_dir, enabled=runtime.is_main)
    if runtime.is_main:
        write_json(
            out_dir / "train_config.json",
            {"config": to_dict(config), "inputs": _inputs_dict(inputs)},
        )
    autocast = (
        torch.autocast(runtime.device.type, dtype=torch.bfloat16)
        if config.bf16
        else contextlib.nullcontext()
    )
    last_eval: EvalResult | None = None
    images = 0
    started = time.perf_counter()
    with job_progress(enabled=show and runtime.is_main) as progress:
        task = progress.add_task(
            "student" if data.unlabeled else "teacher", total=total_steps, info=""
        )
        with student_mode(model):
            for step, (labeled, unlabeled) in enumerate(data.steps(), start=1):
                with autocast:
                    loss, parts = _loss(step_model, labeled, unlabeled, data, config)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                optimizer.step()
                schedule.step()
                if ema is not None:
                    ema.update(model, step=step)
                images += len(labeled.images) + (len(unlabeled.images) if unlabeled else 0)
                rate = images * runtime.world_size / (time.perf_counter() - started)
                progress.update(task, advance=1, info=f"{rate:.0f} img/s  loss {float(loss):.3f}")
                if step % 10 == 0 or step == total_steps:
                    log.log(
                        "train",
                        step,
                        loss=float(loss),
                        lr=optimizer.param_groups[0]["lr"],
                        images_per_s=rate,
                        **parts,
                    )
                if data.eval is not None and (step % eval_every == 0 or step == total_steps):
                    last_eval = evaluate_model(
                        ema.module if ema else model, data.eval, runtime, num_classes
                    )
                    log.log(
                        "eval",
                        step,
                        epoch=round(step / steps_per_epoch, 3),
                        top1=last_eval.top1,
                        top5=last_eval.top5,
                        loss=last_eval.loss,
                    )
                if step >= total_steps:
                    break
    wall = time.perf_counter() - started
    checkpoint = out_dir / CHECKPOINT_DIR
    if runtime.is_main:
        final = ema.module if ema is not None else model
        save_checkpoint(
            checkpoint,
            final,
            CheckpointConfig(
                model_name=config.model,
                num_classes=num_classes,
                class_names=data.class_names,
                image_size=config.image_size,
                noise=model_noise(config),
                ema=ema is not None,
                extra={"steps": total_steps, "eval": last_eval.to_dict() if last_eval else None},
            ),
        )
        log.close()
        if data.eval is not None:
            plot_training(log.path, out_dir / "training.png")
    return TrainResult(checkpoint, last_eval, total_steps, images * runtime.world_size / wall, wall)


def _loss(
    model: torch.nn.Module,
    labeled: Batch,
    unlabeled: Batch | None,
    data: JobData,
    config: TrainConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Labeled CE with smoothing, plus CE against the pseudo labels, from one forward pass."""
    if unlabeled is None:
        logits = model(labeled.images)
        loss = F.cross_entropy(
            logits.float(), labeled.labels, label_smoothing=config.label_smoothing
        )
        return loss, {}
    assert data.pseudo is not None
    logits = model(torch.cat([labeled.images, unlabeled.images]))
    logits_l, logits_u = logits.float().split([len(labeled.images), len(unlabeled.images)])
    loss_l = F.cross_entropy(logits_l, labeled.labels, label_smoothing=config.label_smoothing)
    targets = data.pseudo.dense(unlabeled.sample_ids, hard=not config.soft_labels)
    loss_u = -(targets * F.log_softmax(logits_u, dim=1)).sum(1).mean()
    return loss_l + loss_u, {"loss_labeled": float(loss_l), "loss_pseudo": float(loss_u)}


def _inputs_dict(inputs: TrainInputs) -> dict[str, str | None]:
    return {k: None if v is None else str(v) for k, v in asdict(inputs).items()}
