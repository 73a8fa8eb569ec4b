"""`ns demo`: one Noisy Student round on the embedded handwritten digits, end to end.

digits → three shard sets → noised teacher → unnoised pseudo labels → noised student →
both evaluated on the test set; the table is printed and saved as `RUN/results.json`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ns_data.atomic import write_json
from ns_data.digits import write_digits
from ns_train.config import NoiseConfig, OptimConfig, TrainConfig, to_dict
from ns_train.data import TrainInputs
from ns_train.evaluate import EvalResult, evaluate
from ns_train.labeler import label
from ns_train.trainer import train


def demo_train_config(**changes: object) -> TrainConfig:
    """The demo's recipe: EfficientNet-B0 on 32 px digits, AdamW, short, no flips."""
    base = {
        "model": "efficientnet_b0",
        "image_size": 32,
        "epochs": 30.0,
        "batch_size": 32,
        "unlabeled_ratio": 3,
        "ema_decay": 0.99,
        "optim": OptimConfig(
            name="adamw", lr_per_2048=0.128, warmup_epochs=2, schedule="cosine", weight_decay=0.05
        ),
        "noise": NoiseConfig(randaugment_n=2, randaugment_m=9, flip=False, crop_scale=(0.5, 1.0)),
        "eval_every": 5.0,
    }
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


@dataclass(kw_only=True, slots=True)
class DemoConfig:
    """The demo's data split and its teacher and student jobs."""

    labels_per_class: int = 10
    test_per_class: int = 50
    seed: int = 0
    teacher: TrainConfig = field(default_factory=demo_train_config)
    student: TrainConfig = field(default_factory=lambda: demo_train_config(epochs=10.0))


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Test accuracy of the teacher and of the student, and the wall time of each phase."""

    teacher: EvalResult
    student: EvalResult
    seconds: dict[str, float]


def run_demo(
    out_dir: Path, config: DemoConfig | None = None, *, show_progress: bool = True
) -> DemoResult:
    """Run the whole round under `out_dir` and write `out_dir/results.json`."""
    config = config or DemoConfig()
    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 1)
        clock = now

    sets = write_digits(
        out_dir / "data",
        image_size=config.teacher.image_size,
        labels_per_class=config.labels_per_class,
        test_per_class=config.test_per_class,
        seed=config.seed,
    )
    lap("shard")
    teacher = train(
        config.teacher,
        TrainInputs(labeled=sets.labeled, eval_set=sets.test),
        out_dir / "teacher",
        show_progress=show_progress,
    )
    lap("teacher")
    label(
        teacher.checkpoint,
        sets.unlabeled,
        out_dir / "labels",
        backend=config.teacher.backend,
        show_progress=show_progress,
    )
    lap("label")
    student_inputs = TrainInputs(
        labeled=sets.labeled,
        eval_set=sets.test,
        unlabeled=sets.unlabeled,
        pseudo_labels=out_dir / "labels",
    )
    student = train(
        config.student, student_inputs, out_dir / "student", show_progress=show_progress
    )
    lap("student")
    result = DemoResult(
        teacher=evaluate(teacher.checkpoint, sets.test, backend=config.teacher.backend),
        student=evaluate(student.checkpoint, sets.test, backend=config.student.backend),
        seconds=seconds,
    )
    lap("evaluate")
    write_json(
        out_dir / "results.json",
        {
            "teacher": result.teacher.to_dict(),
            "student": result.student.to_dict(),
            "seconds": seconds,
            "config": to_dict(config),
        },
    )
    return result
