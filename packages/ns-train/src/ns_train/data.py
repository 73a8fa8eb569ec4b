"""The loaders of a training job, built from shard-set paths and a `TrainConfig`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ns_data.errors import DataError
from ns_data.labels.store import PseudoLabels
from ns_data.loading.loader import Batch, ImageLoader, LoaderState
from ns_data.loading.paired import PairedLoader
from ns_data.loading.views import View
from ns_data.shards.reader import ShardSet
from ns_train.config import TrainConfig
from ns_train.errors import TrainError
from ns_train.ranks import gather
from ns_train.runtime import Runtime


@dataclass(frozen=True, slots=True)
class TrainInputs:
    """What a job reads: a labeled set, optionally an eval set, and for a student the unlabeled
    set with its pseudo labels and selection plan (`plan.npy`, one copy count per sample)."""

    labeled: Path
    eval_set: Path | None = None
    unlabeled: Path | None = None
    pseudo_labels: Path | None = None
    plan: Path | None = None
    init: Path | None = None
    """Initialize the weights from this checkpoint (e.g. the student from its teacher)."""

    @property
    def is_student(self) -> bool:
        return self.unlabeled is not None


def train_view(config: TrainConfig) -> View:
    noise = config.noise
    return View(
        image_size=config.image_size,
        train=True,
        scale=noise.crop_scale,
        flip=noise.flip,
        randaugment_n=noise.randaugment_n,
        randaugment_m=noise.randaugment_m,
        channels_last=config.channels_last,
    )


def eval_view(config: TrainConfig) -> View:
    return View(image_size=config.image_size, channels_last=config.channels_last)


def load_plan(path: Path, expected: int) -> np.ndarray:
    """A selection plan: `plan.npy` of per-sample copy counts (never unpickled)."""
    try:
        plan = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise TrainError(f"cannot read selection plan {path}: {err}; rerun `ns select`") from err
    if plan.ndim != 1 or len(plan) != expected:
        raise TrainError(
            f"{path} has {plan.shape} entries, the unlabeled set {expected}: it is for another set"
        )
    return plan


class JobData:
    """Labeled, unlabeled and eval loaders of one job on one rank, plus the pseudo labels."""

    def __init__(self, config: TrainConfig, inputs: TrainInputs, runtime: Runtime) -> None:
        common = {"seed": config.seed, "rank": runtime.rank, "world_size": runtime.world_size}
        per_rank = config.batch_size // runtime.world_size
        rank, world = runtime.rank, runtime.world_size
        self.labeled_set = ShardSet.for_rank(inputs.labeled, rank, world)
        try:
            self.labeled_set.require_labels()
        except DataError as err:
            raise TrainError(str(err)) from err
        self.class_names = self.labeled_set.manifest.classes
        self.labeled = config.loader.build(
            self.labeled_set,
            train_view(config),
            batch_size=per_rank,
            device=runtime.device,
            shuffle=True,
            drop_last=True,
            **common,
        )
        self.unlabeled: ImageLoader | None = None
        self.paired: PairedLoader | None = None
        self.pseudo: PseudoLabels | None = None
        if inputs.is_student:
            self._open_student(config, inputs, runtime, common)
        self.eval: ImageLoader | None = None
        if inputs.eval_set is not None:
            eval_set = ShardSet.for_rank(inputs.eval_set, rank, world)
            eval_set.require_labels()
            if eval_set.manifest.classes != self.class_names:
                raise TrainError(f"{inputs.eval_set} has other classes than {inputs.labeled}")
            self.eval = config.loader.build(
                eval_set,
                eval_view(config),
                batch_size=2 * per_rank,
                device=runtime.device,
                **common,
            )
        self.steps_per_epoch = self._agreed_epoch(inputs, per_rank, runtime)

    def _agreed_epoch(self, inputs: TrainInputs, per_rank: int, runtime: Runtime) -> int:
        """Steps in an epoch, the same on every rank: an epoch is one pass over the pseudo-labeled
        data (student) or the labeled data (teacher), and under DDP the ranks' shares of a
        selection plan differ in size, so they agree on the mean (each loader simply starts its
        next epoch when its share is done). Refused, on every rank, when a share gives no batch."""
        pseudo = len(self.unlabeled) if self.unlabeled is not None else 0
        lengths = gather(runtime, (len(self.labeled), pseudo))
        for rank, (labeled, unlabeled) in enumerate(lengths):
            where = f" on rank {rank} of {runtime.world_size}" if runtime.distributed else ""
            if labeled == 0:
                raise TrainError(
                    f"{inputs.labeled} gives no full batch of {per_rank} labeled images{where}; "
                    "lower batch_size"
                )
            if self.unlabeled is not None and unlabeled == 0:
                raise TrainError(
                    f"{inputs.unlabeled} gives no full batch of {self.unlabeled.batch_size} "
                    f"pseudo-labeled images{where} (the selection plan keeps too few there); "
                    "lower batch_size or unlabeled_ratio, or lower the threshold"
                )
        column = 1 if self.unlabeled is not None else 0
        return max(1, round(sum(length[column] for length in lengths) / len(lengths)))

    def _open_student(
        self, config: TrainConfig, inputs: TrainInputs, runtime: Runtime, common: dict[str, int]
    ) -> None:
        per_rank = config.batch_size // runtime.world_size
        if inputs.pseudo_labels is None:
            raise TrainError("a student needs --pseudo-labels (the folder `ns label` wrote)")
        assert inputs.unlabeled is not None
        unlabeled_set = ShardSet.for_rank(inputs.unlabeled, runtime.rank, runtime.world_size)
        tars = [unlabeled_set.manifest.shards[n].tar for n in unlabeled_set.shard_numbers]
        self.pseudo = PseudoLabels(inputs.pseudo_labels, tars)  # only this rank's shards
        if self.pseudo.teacher.class_names != self.class_names:
            raise TrainError(
                f"{inputs.pseudo_labels} was made by a teacher with classes "
                f"{self.pseudo.teacher.class_names[:5]}…, the labeled set has {self.class_names[:5]}…; "
                "relabel with a teacher trained on these classes"
            )
        self.pseudo.rows_of(unlabeled_set.table.sample_id)  # every sample has one, known now
        copies = load_plan(inputs.plan, unlabeled_set.total_samples) if inputs.plan else None
        self.unlabeled = config.loader.build(
            unlabeled_set,
            train_view(config),
            batch_size=per_rank * config.unlabeled_ratio,
            device=runtime.device,
            shuffle=True,
            drop_last=True,
            copies=copies,
            **common,
        )
        self.paired = PairedLoader(self.labeled, self.unlabeled, ratio=config.unlabeled_ratio)

    def steps(self) -> Iterator[tuple[Batch, Batch | None]]:
        """Endless (labeled, unlabeled) batch pairs; each loader starts a new epoch when done."""
        if self.paired is None:
            for batch in _forever(self.labeled):
                yield batch, None
        else:
            while True:
                for pair in self.paired:
                    yield pair.labeled, pair.unlabeled

    def state_dict(self) -> dict[str, LoaderState]:
        """The loaders' positions, for exact resume (their augmentation draws follow from them)."""
        if self.paired is not None:
            return self.paired.state_dict()
        return {"labeled": self.labeled.state_dict()}

    def load_state_dict(self, state: dict[str, LoaderState]) -> None:
        if self.paired is not None:
            self.paired.load_state_dict(state)
        else:
            self.labeled.load_state_dict(state["labeled"])


def _forever(loader: ImageLoader) -> Iterator[Batch]:
    while True:
        yield from loader
