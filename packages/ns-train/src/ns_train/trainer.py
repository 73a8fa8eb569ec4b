"""Train a teacher (labeled data) or a noised student (labeled + pseudo-labeled data).

    result = train(TrainConfig(model="efficientnet_b0"), TrainInputs(labeled=Path("shards/train")), out)

Each student step takes a labeled batch and an unlabeled batch `unlabeled_ratio` times larger in
one forward pass; loss = CE(labels, smoothing) + CE(pseudo labels, soft or hard). The EMA weights
are evaluated, plotted and saved as the checkpoint that labels the next round. Snapshots every
`checkpoint_every` steps let `resume=True` continue exactly where a killed job stopped.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

import torch
import torch.distributed as dist
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from ns_data.atomic import write_json
from ns_data.job_lock import hold_output_lock
from ns_data.loading.loader import Batch
from ns_models import (
    CheckpointConfig,
    ModelNoise,
    SpeedConfig,
    autocast,
    build_model,
    check_name,
    default_noise,
    load_checkpoint,
    read_config,
    save_checkpoint,
    student_mode,
)
from ns_train.config import TrainConfig, to_dict
from ns_train.data import JobData, TrainInputs
from ns_train.errors import TrainError
from ns_train.evaluation.predictions import EvalResult, evaluate_model
from ns_train.freezing import freeze, keep_statistics, shallow_modules
from ns_train.metrics import MetricsLog, RunningMeans
from ns_train.optim import build_optimizer, build_schedule
from ns_train.plots import plot_training
from ns_train.preemption import Preempted, StopRequest, stop_requests
from ns_train.progress import job_progress
from ns_train.ranks import any_signal, gather
from ns_train.runs.folder import CHECKPOINT_DIR
from ns_train.runtime import Runtime, start, stop
from ns_train.state import (
    Snapshot,
    capture_rng,
    latest_snapshot,
    load_snapshot,
    rank_rng_states,
    restore_rng,
    rng_of_rank,
    save_snapshot,
)

logger = logging.getLogger(__name__)
LOG_EVERY = 10
"""Steps between `metrics.jsonl` lines (loss averaged over them) and loss updates on the bar."""


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
    drop = config.noise.drop_rate
    path = config.noise.drop_path_rate
    return ModelNoise(
        drop_rate=default.drop_rate if drop is None else drop,
        drop_path_rate=default.drop_path_rate if path is None else path,
    )


def train(
    config: TrainConfig,
    inputs: TrainInputs,
    out_dir: Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    """Run one training job to the end and write `out_dir/checkpoint` (EMA weights when EMA is on).

    An `out_dir` that already holds a job is refused unless `resume` (continue from its newest
    snapshot; a finished job is returned as it is).
    """
    out_dir = Path(out_dir)
    check_name(config.model)
    finished = out_dir / CHECKPOINT_DIR
    if not resume and (finished.exists() or latest_snapshot(out_dir) is not None):
        raise TrainError(
            f"{out_dir} already holds a training job; pass --resume to continue it or pick another --out"
        )
    runtime = start(config.device, config.seed)
    try:
        with hold_output_lock(out_dir, holder=runtime.is_main):
            job = Job(config, inputs, out_dir, runtime)
            return job.run(resume=resume, show_progress=show_progress)
    finally:
        stop(runtime)


class Job:
    """The parts of one training job on one rank: data, model, EMA, optimizer, schedule, log."""

    def __init__(
        self, config: TrainConfig, inputs: TrainInputs, out_dir: Path, runtime: Runtime
    ) -> None:
        if config.batch_size % runtime.world_size:
            raise TrainError(
                f"batch_size {config.batch_size} does not divide across {runtime.world_size} ranks; "
                f"use a multiple of {runtime.world_size}"
            )
        self.config, self.inputs, self.out_dir, self.runtime = config, inputs, out_dir, runtime
        self.data = JobData(config, inputs, runtime)
        self.num_classes = len(self.data.class_names)
        self.model = build_model(config.model, self.num_classes, noise=model_noise(config))
        if inputs.init is not None:  # e.g. ImageNet weights: a new head when the classes differ
            other = read_config(inputs.init).num_classes != self.num_classes
            source, _ = load_checkpoint(
                inputs.init, num_classes=self.num_classes, reinit_classifier=other
            )
            self.model.load_state_dict(source.state_dict())
        self.frozen = (
            shallow_modules(self.model, config.freeze_blocks) if config.freeze_blocks else []
        )
        freeze(self.frozen)
        if config.sync_bn and runtime.distributed:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(runtime.device, memory_format=memory_format)  # type: ignore[call-overload]  # torch stubs lack (device, memory_format=)
        self.ema = (
            ModelEmaV3(self.model, decay=config.ema_decay, use_warmup=True)
            if config.ema_decay
            else None
        )
        self.step_model: torch.nn.Module = (
            torch.compile(self.model)  # type: ignore[assignment]  # an OptimizedModule, an nn.Module
            if config.compile
            else self.model
        )
        if runtime.distributed:
            self.step_model = DistributedDataParallel(self.step_model)
        images_per_step = config.batch_size * (
            1 + (config.unlabeled_ratio if self.data.unlabeled else 0)
        )
        self.optimizer = build_optimizer(self.model, config.optim, images_per_step)
        self.steps_per_epoch = self.data.steps_per_epoch
        self.total_steps = math.ceil(config.epochs * self.steps_per_epoch)
        self.schedule = build_schedule(
            self.optimizer, config.optim, self.steps_per_epoch, self.total_steps
        )
        self.step = 0
        self.last_eval: EvalResult | None = None

    def run(self, *, resume: bool, show_progress: bool) -> TrainResult:
        """Train from step 0 or from the newest snapshot to `total_steps`, then save the checkpoint."""
        if resume and (self.out_dir / CHECKPOINT_DIR).exists():
            return self._finished_result()
        snapshot = latest_snapshot(self.out_dir) if resume else None
        if snapshot is not None:
            self.restore(load_snapshot(snapshot))
        log = MetricsLog(self.out_dir, enabled=self.runtime.is_main, purge_step=self.step)
        if self.runtime.is_main:
            write_json(
                self.out_dir / "train_config.json",
                {"config": to_dict(self.config), "inputs": _paths(self.inputs)},
            )
        config, every_eval = (
            self.config,
            max(1, round(self.config.eval_every * self.steps_per_epoch)),
        )
        images, started, losses, shown = 0, time.perf_counter(), RunningMeans(), ""
        with (
            job_progress(enabled=show_progress and self.runtime.is_main) as progress,
            stop_requests() as stop,
        ):
            task = progress.add_task(
                self._role(), total=self.total_steps, completed=self.step, info=""
            )
            with student_mode(self.model):
                keep_statistics(self.frozen)
                for labeled, unlabeled in self.data.steps():
                    if self.step >= self.total_steps:
                        break
                    losses.add(**self.train_step(labeled, unlabeled))
                    images += len(labeled.images) + (len(unlabeled.images) if unlabeled else 0)
                    rate = images * self.runtime.world_size / (time.perf_counter() - started)
                    if self.step % LOG_EVERY == 0 or self.step == self.total_steps:
                        means = self._mean(losses.pop())
                        shown = f"  loss {means['loss']:.3f}"
                        log.log(
                            "train",
                            self.step,
                            lr=self.schedule.get_last_lr()[0],
                            images_per_s=rate,
                            **means,
                        )
                    progress.update(task, advance=1, info=f"{rate:.0f} img/s{shown}")
                    if self.data.eval is not None and (
                        self.step % every_eval == 0 or self.step == self.total_steps
                    ):
                        self.last_eval = evaluate_model(
                            self.eval_model, self.data.eval, self.runtime, self.num_classes
                        )
                        log.log(
                            "eval",
                            self.step,
                            epoch=round(self.step / self.steps_per_epoch, 3),
                            **_scores(self.last_eval),
                        )
                    if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                        self.save_snapshot()
                    if self._stopping(stop):
                        self._stop_here(stop, log)
        wall = time.perf_counter() - started
        log.close()
        checkpoint = self.out_dir / CHECKPOINT_DIR
        if self.runtime.is_main:
            self.save_checkpoint(checkpoint)
            if self.data.eval is not None:
                plot_training(log.path, self.out_dir / "training.png")
        if self.runtime.distributed:
            dist.barrier()
        return TrainResult(
            checkpoint,
            self.last_eval,
            self.total_steps,
            images * self.runtime.world_size / wall,
            wall,
        )

    def _stopping(self, stop: StopRequest) -> bool:
        """Whether every rank stops now, asked after each step (under DDP one tiny host-side
        all-reduce, so a signal reaching some ranks stops them all at the same step, well within
        the 30 s that torchrun waits after forwarding SIGTERM)."""
        signum = any_signal(self.runtime, stop.signum)
        if signum and not stop:
            stop.signum = signum
        return signum is not None

    def _stop_here(self, stop: StopRequest, log: MetricsLog) -> NoReturn:
        """Snapshot this step (unless one was just written), then raise `Preempted`."""
        log.close()
        every = self.config.checkpoint_every
        just_saved = bool(every) and self.step % every == 0
        if not just_saved:
            self.save_snapshot()
        if self.runtime.distributed:
            dist.barrier()
        assert stop.signum is not None
        name = signal.Signals(stop.signum).name
        raise Preempted(
            stop.signum,
            f"stopped by {name} at step {self.step} of {self.total_steps}; the snapshot is in "
            f"{self.out_dir / 'state'}: rerun the same command (ns train: with --resume) to continue",
        )

    def _role(self) -> str:
        return "student" if self.data.unlabeled else "teacher"

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def train_step(self, labeled: Batch, unlabeled: Batch | None) -> dict[str, torch.Tensor]:
        """One optimizer step; returns this rank's loss and its parts, as tensors on the device
        (reading them here would make the host wait for the GPU every step)."""
        with autocast(SpeedConfig(bf16=self.config.bf16), self.runtime.device):
            parts = _loss(self.step_model, labeled, unlabeled, self.data, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        if self.config.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)
        return parts

    def _mean(self, values: dict[str, float]) -> dict[str, float]:
        """`values` averaged over ranks (metrics are logged once, for the whole job)."""
        if not self.runtime.distributed:
            return values
        tensor = torch.tensor(list(values.values()), device=self.runtime.device)
        dist.all_reduce(tensor)
        totals = tensor.tolist()
        return {k: v / self.runtime.world_size for k, v in zip(values, totals, strict=True)}

    def save_snapshot(self) -> None:
        """Every rank hands in its random state; rank 0 writes the snapshot."""
        snapshot = self.snapshot()
        if self.runtime.is_main:
            save_snapshot(self.out_dir, snapshot, self.config.keep_checkpoints)

    def snapshot(self) -> Snapshot:
        """The job's state at this step, with every rank's RNG states (a collective under DDP)."""
        return Snapshot(
            step=self.step,
            model=self.model.state_dict(),
            ema=self.ema.module.state_dict() if self.ema is not None else None,
            optimizer=self.optimizer.state_dict(),
            schedule=self.schedule.state_dict(),
            loaders=gather(self.runtime, self.data.state_dict()),
            rng=rank_rng_states(gather(self.runtime, capture_rng())),
            world_size=self.runtime.world_size,
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Continue from a snapshot: weights, EMA, optimizer, schedule, data position, RNG."""
        self.model.load_state_dict(snapshot.model)
        if self.ema is not None and snapshot.ema is not None:
            self.ema.module.load_state_dict(snapshot.ema)
        self.optimizer.load_state_dict(snapshot.optimizer)
        self.schedule.load_state_dict(snapshot.schedule)
        self.step = snapshot.step
        rank, same_ranks = self.runtime.rank, snapshot.world_size == self.runtime.world_size
        self.data.load_state_dict(snapshot.loaders[rank if same_ranks else 0])
        mine = rng_of_rank(snapshot.rng, rank)
        if same_ranks and mine is not None:
            restore_rng(mine)
        else:  # another number of ranks: the same global batch, fresh per-rank random streams
            logger.warning(
                "resuming a %d-rank snapshot on %d ranks: the global batch is kept, dropout and "
                "stochastic depth draw new random numbers",
                snapshot.world_size,
                self.runtime.world_size,
            )
            torch.manual_seed(self.config.seed + self.runtime.rank + 1_000_003 * self.step)

    def save_checkpoint(self, directory: Path) -> None:
        save_checkpoint(
            directory,
            self.eval_model,
            CheckpointConfig(
                model_name=self.config.model,
                num_classes=self.num_classes,
                class_names=self.data.class_names,
                image_size=self.config.image_size,
                noise=model_noise(self.config),
                ema=self.ema is not None,
                extra={
                    "steps": self.total_steps,
                    "eval": _finite(self.last_eval.to_dict()) if self.last_eval else None,
                    "inputs": _paths(self.inputs),
                    "teacher": self._teacher(),
                },
            ),
        )

    def _teacher(self) -> dict[str, str] | None:
        """Who made a student's pseudo labels (None for a teacher)."""
        if self.data.pseudo is None:
            return None
        made_by = self.data.pseudo.teacher
        return {
            "checkpoint": made_by.checkpoint,
            "model_name": made_by.model_name,
            "teacher_id": made_by.teacher_id,
        }

    def _finished_result(self) -> TrainResult:
        checkpoint = self.out_dir / CHECKPOINT_DIR
        _, meta = load_checkpoint(checkpoint)
        done, steps = meta.extra.get("eval"), meta.extra.get("steps", 0)
        return TrainResult(
            checkpoint,
            EvalResult(**done) if isinstance(done, dict) else None,
            steps if isinstance(steps, int) else 0,
            0.0,
            0.0,
        )


def _loss(
    model: torch.nn.Module,
    labeled: Batch,
    unlabeled: Batch | None,
    data: JobData,
    config: TrainConfig,
) -> dict[str, torch.Tensor]:
    """Labeled CE with smoothing, plus CE against the pseudo labels, from one forward pass:
    `loss` and, for a student, its parts `loss_labeled` and `loss_pseudo`."""
    if unlabeled is None:
        logits = model(labeled.images)
        loss = F.cross_entropy(
            logits.float(), labeled.labels, label_smoothing=config.label_smoothing
        )
        return {"loss": loss}
    assert data.pseudo is not None
    logits = model(torch.cat([labeled.images, unlabeled.images]))
    logits_l, logits_u = logits.float().split([len(labeled.images), len(unlabeled.images)])
    loss_l = F.cross_entropy(logits_l, labeled.labels, label_smoothing=config.label_smoothing)
    targets = data.pseudo.dense(
        unlabeled.sample_ids, hard=not config.soft_labels, device=logits_u.device
    )
    loss_u = -(targets * F.log_softmax(logits_u, dim=1)).sum(1).mean()
    return {"loss": loss_l + loss_u, "loss_labeled": loss_l, "loss_pseudo": loss_u}


def _finite(values: dict[str, object]) -> dict[str, object]:
    """JSON-safe metrics: a NaN or infinite loss of a diverged job becomes None."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()
    }


def _scores(result: EvalResult) -> dict[str, float]:
    return {"top1": result.top1, "top5": result.top5, "loss": result.loss}


def _paths(inputs: TrainInputs) -> dict[str, str | None]:
    return {k: None if v is None else str(v) for k, v in asdict(inputs).items()}
