"""`ns status RUN`: where a run stands, step by step, read from its directory alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ns_data.labels.store import SUFFIX
from ns_data.shards.manifest import Manifest
from ns_train.errors import TrainError
from ns_train.jsonl import read_jsonl
from ns_train.runs.folder import (
    CHECKPOINT_DIR,
    Record,
    RunLayout,
    Step,
    find_record,
    planned_steps,
    read_records,
)

State = Literal["done", "partial", "pending"]


@dataclass(frozen=True, slots=True)
class StepStatus:
    """One step of the run: its state and a short detail (accuracy, progress)."""

    iteration: int
    step: Step
    state: State
    detail: str
    path: Path


def run_status(run_dir: Path) -> list[StepStatus]:
    """Every step the run's config asks for, in order, with its state."""
    layout = RunLayout(Path(run_dir))
    if not layout.config.exists():
        raise TrainError(
            f"{run_dir} is not a run directory (no run_config.json); start it with `ns run`"
        )
    config = json.loads(layout.config.read_text())
    records = read_records(layout)
    steps = planned_steps(
        layout,
        config["iterations"],
        config["unnoised_baseline"],
        config.get("robustness", {}).get("enabled", False),
        config.get("oracle_baseline", False),
    )
    return [
        _status(layout, config, records, planned.iteration, planned.step, planned.folder)
        for planned in steps
        if planned.step is not Step.ITERATION
    ]


def _status(
    layout: RunLayout,
    config: dict[str, Any],
    records: list[Record],
    iteration: int,
    step: Step,
    path: Path,
) -> StepStatus:
    record = find_record(records, iteration, step)
    if record is not None:
        return StepStatus(iteration, step, "done", _done_detail(record), path)
    if not path.exists():
        return StepStatus(iteration, step, "pending", "", path)
    if step is Step.LABEL:
        data = config["data"]
        unlabeled = layout.data / "unlabeled" if data["source"] == "digits" else data["unlabeled"]
        total = len(Manifest.load(Path(unlabeled)).shards)
        done = len(list(path.glob(f"*{SUFFIX}")))
        return StepStatus(iteration, step, "partial", f"{done}/{total} shards labeled", path)
    if step is Step.PLAN or (path / CHECKPOINT_DIR).exists():
        return StepStatus(iteration, step, "partial", "finished, not yet recorded", path)
    trained = [r["step"] for r in _job_metrics(path) if r["kind"] == "train"]
    detail = f"step {trained[-1]} logged" if trained else "started"
    return StepStatus(iteration, step, "partial", detail, path)


def _done_detail(record: Record) -> str:
    parts = []
    if (top1 := record.get("top1")) is not None:
        parts.append(f"{record['model']} top-1 {100 * top1:.1f}%")
    if "mean_confidence" in record:
        parts.append(f"{record['samples']} images, mean confidence {record['mean_confidence']}")
    if "models" in record:  # the robustness step
        models = record["models"]
        assert isinstance(models, dict)
        parts.append(
            "mCE vs teacher: "
            + ", ".join(f"{k} {_mce(v['mce_vs_teacher'])}" for k, v in models.items())
        )
    if "used" in record:
        parts.append(f"{record['used']} used, {record['dropped']} dropped")
    parts.append(f"{record['wall_s']} s")
    return ", ".join(parts)


def _mce(value: float | None) -> str:
    """An mCE in %; none when no benchmark corruption was measured (extra ones only)."""
    return "—" if value is None else f"{100 * value:.1f}"


def _job_metrics(path: Path) -> list[dict[str, Any]]:
    metrics = path / "metrics.jsonl"
    return read_jsonl(metrics) if metrics.exists() else []
