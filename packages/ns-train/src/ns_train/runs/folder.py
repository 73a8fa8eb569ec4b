"""The run directory of `ns run`: where each step's artifacts go, and its step records.

RUN/run_config.json      the resolved RunConfig (a rerun with another config is refused)
RUN/data/                the digits shard sets (data.source = "digits")
RUN/iter-0/teacher/      iteration 0: the teacher (a training job folder)
RUN/iter-1/labels/       the teacher of iteration 1 labels the unlabeled set
RUN/iter-1/plan/         filter + balance: plan.npy, selection.json
RUN/iter-1/student/      the student; its EMA weights teach iteration 2
RUN/iter-1/student-unnoised/   the unnoised baseline (unnoised_baseline = true)
RUN/iter-1/student-oracle/     the student on true labels (oracle_baseline = true)
RUN/robustness/          corrupted eval sets (data/) and each model's ImageNet-C results
RUN/metrics.jsonl        one record per finished step, and one per finished iteration
RUN/report.md, RUN/*.png the report and its plots
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Required, TypedDict, cast

from ns_data.atomic import write_json
from ns_train.errors import TrainError
from ns_train.jsonl import append_jsonl, read_jsonl

CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.jsonl"
REPORT_FILE = "report.md"
CHECKPOINT_DIR = "checkpoint"
"""Inside every training job folder (a run's teacher and students, or `ns train --out`)."""


class RobustnessScores(TypedDict):
    """One model's line of the robustness step: its folder under RUN/robustness and its errors."""

    folder: str
    mce_vs_teacher: float | None
    mce_vs_alexnet: float | None
    error: dict[str, float]


class StepValues(TypedDict, total=False):
    """What one step measured; each step fills its own group of keys (a file format: keep names)."""

    # a trained model (teacher, students): Step in TRAINED
    model: str
    image_size: int
    steps: int
    images_per_s: float
    top1: float | None
    top5: float | None
    per_class: list[float] | None
    # label
    samples: int
    unreadable: int
    mean_confidence: float
    # plan (and the iteration summary)
    used: int
    kept: int
    dropped: int
    duplicated: int
    # iteration
    teacher_model: str
    teacher_top1: float | None
    iteration_wall_s: float
    # robustness
    models: dict[str, RobustnessScores]
    units: int


class Record(StepValues, total=False):
    """One line of RUN/metrics.jsonl: the step (a `Step` value), where it ran, how long, its values."""

    iteration: Required[int]
    step: Required[str]
    wall_s: Required[float]


class Step(StrEnum):
    """The steps of a run, spelled as its records and `ns status` spell them."""

    TEACHER = "teacher"
    LABEL = "label"
    PLAN = "plan"
    STUDENT = "student"
    UNNOISED = "student-unnoised"
    ORACLE = "student-oracle"
    """Iteration 1's student trained on the unlabeled images' true labels (the upper bound)."""
    ITERATION = "iteration"
    """Not work: the record summing up a finished iteration (written after its last step)."""
    ROBUSTNESS = "robustness"
    """After the last iteration: every model on corrupted copies of the eval set."""


TRAINED = (Step.TEACHER, Step.STUDENT, Step.UNNOISED, Step.ORACLE)
"""The steps that train a model (a job folder with a checkpoint)."""


@dataclass(frozen=True, slots=True)
class RunLayout:
    """Paths inside one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def shards(self) -> Path:
        """Where the run shards the image folders its config names (see `run_shards`)."""
        return self.root / "shards"

    def iteration(self, number: int) -> Path:
        return self.root / f"iter-{number}"

    @property
    def teacher(self) -> Path:
        return self.iteration(0) / "teacher"

    def labels(self, number: int) -> Path:
        return self.iteration(number) / "labels"

    def plan(self, number: int) -> Path:
        return self.iteration(number) / "plan"

    def student(self, number: int) -> Path:
        return self.iteration(number) / "student"

    def baseline(self, number: int) -> Path:
        return self.iteration(number) / "student-unnoised"

    def oracle(self, number: int) -> Path:
        return self.iteration(number) / "student-oracle"

    def oracle_labels(self, number: int) -> Path:
        return self.iteration(number) / "oracle-labels"

    @property
    def robustness(self) -> Path:
        return self.root / "robustness"

    def model_dir(self, number: int) -> Path:
        """The training job of iteration `number`: the teacher (0) or that iteration's student."""
        return self.teacher if number == 0 else self.student(number)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of a run's sequence and the folder its artifacts go to."""

    iteration: int
    step: Step
    folder: Path


def planned_steps(
    layout: RunLayout,
    iterations: int,
    unnoised_baseline: bool,
    robustness: bool = False,
    oracle_baseline: bool = False,
) -> list[PlannedStep]:
    """The run's steps in order, the one definition that `ns run` and `ns status` follow."""
    steps = [PlannedStep(0, Step.TEACHER, layout.teacher)]
    for number in range(1, iterations + 1):
        steps += [
            PlannedStep(number, Step.LABEL, layout.labels(number)),
            PlannedStep(number, Step.PLAN, layout.plan(number)),
            PlannedStep(number, Step.STUDENT, layout.student(number)),
        ]
        if number == 1 and unnoised_baseline:
            steps.append(PlannedStep(number, Step.UNNOISED, layout.baseline(number)))
        if number == 1 and oracle_baseline:
            steps.append(PlannedStep(number, Step.ORACLE, layout.oracle(number)))
        steps.append(PlannedStep(number, Step.ITERATION, layout.student(number)))
    if robustness:
        steps.append(PlannedStep(iterations, Step.ROBUSTNESS, layout.robustness))
    return steps


def claim(layout: RunLayout, config: dict[str, Any], *, force: bool) -> None:
    """Store `config` in a new run directory; an existing one must hold the same config.

    `force` replaces a different stored config and keeps every finished step. A config stored
    by an older ns (old field names, fields added since at their defaults) is the same config:
    it is rewritten in today's names.
    """
    config = json.loads(json.dumps(config))  # tuples become lists, as when read back
    if layout.config.exists():
        stored = json.loads(layout.config.read_text())
        if stored == config:
            return
        stored = _in_current_names(stored)
        if not force and stored != config:
            changed = sorted(config_differences(stored, config))
            raise TrainError(
                f"{layout.root} was made by another config (differs in {', '.join(changed[:4])}): "
                "pick another --out, or pass --force to continue it with this config"
            )
    layout.root.mkdir(parents=True, exist_ok=True)
    write_json(layout.config, config)


def _in_current_names(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored run config read as today's `RunConfig` (old spellings moved, new fields at their
    defaults) and written back as a dict; as it is when it does not read. A config of ns 0.2 has
    no `label` table: its runs labeled with the student's device, precision and loader."""
    from ns_data.errors import DataError
    from ns_train.config import from_dict, to_dict
    from ns_train.runs.config import RunConfig

    student = stored.get("student")
    if "label" not in stored and isinstance(student, dict):
        label = {k: student[k] for k in ("device", "bf16", "channels_last") if k in student}
        loader = {k: student[k] for k in ("backend", "workers") if k in student}
        stored = {**stored, "label": {**label, "loader": loader} if loader else label}
    try:
        current = to_dict(from_dict(RunConfig, stored))
    except (TrainError, DataError):
        return stored
    return json.loads(json.dumps(current))


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted names of the fields in which two config dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            name
            for key in sorted({*old, *new})
            for name in config_differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [prefix.rstrip(".")]


def read_records(layout: RunLayout) -> list[Record]:
    """The records of `metrics.jsonl` (none before the first finished step)."""
    if not layout.metrics.exists():
        return []
    return cast(list[Record], read_jsonl(layout.metrics))


def find_record(records: list[Record], iteration: int, step: Step) -> Record | None:
    """The record of one step (the last, if a forced rerun wrote it twice)."""
    found = [r for r in records if r["iteration"] == iteration and r["step"] == step]
    return found[-1] if found else None


def append_record(layout: RunLayout, record: Record) -> None:
    """Append one record (a line) to `metrics.jsonl`."""
    append_jsonl(layout.metrics, dict(record))
