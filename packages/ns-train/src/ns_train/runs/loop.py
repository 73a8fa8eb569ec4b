"""`ns run`: the iterative Noisy Student loop over a run directory.

    summary = run(preset("digits-demo"), Path("runs/demo"))

Iteration 0 trains the teacher on the labeled set. Each iteration 1..N labels the unlabeled set
with the previous model (EMA weights, no noise), filters and balances the pseudo labels into a
selection plan, trains a noised student equal to or larger than its teacher, and evaluates it; the
student teaches the next iteration. A step whose record and artifacts exist is skipped, a killed
training job resumes from its newest snapshot and labeling skips finished shards, so running the
same command again continues where it stopped.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ns_data.job_lock import hold_output_lock
from ns_data.robustness.names import CORRUPTIONS_RECORD
from ns_models import LADDER, SPECS, check_name, is_at_least, next_larger, rung
from ns_train.config import NoiseConfig, TrainConfig, replace, to_dict
from ns_train.data import TrainInputs
from ns_train.errors import TrainError
from ns_train.labeler import SUMMARY_FILE as LABELS_SUMMARY
from ns_train.labeler import label
from ns_train.ranks import broadcast, on_main
from ns_train.runs.config import RunConfig
from ns_train.runs.folder import (
    CHECKPOINT_DIR,
    TRAINED,
    PlannedStep,
    Record,
    RunLayout,
    Step,
    StepValues,
    append_record,
    claim,
    find_record,
    planned_steps,
    read_records,
)
from ns_train.runs.oracle import write_truth_labels
from ns_train.runs.ranks import check_ranks, check_shared_folder
from ns_train.runs.report import write_report
from ns_train.runs.robustness import TrainedModel, measure_robustness
from ns_train.runs.shards import RunShards
from ns_train.runtime import Runtime, start, stop
from ns_train.selection_plan import PLAN_FILE, make_plan
from ns_train.state import latest_snapshot
from ns_train.trainer import TrainResult, train

log = logging.getLogger(__name__)

UNNOISED = NoiseConfig(
    randaugment_n=0, flip=False, crop_scale=(1.0, 1.0), drop_rate=0.0, drop_path_rate=0.0
)
"""The baseline student's noise: none at all (the paper's Table 6 removes every kind)."""


@dataclass(frozen=True, slots=True)
class RunData:
    """The shard sets a run reads."""

    labeled: Path
    unlabeled: Path
    eval_set: Path | None
    unlabeled_truth: Path | None = None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Every step record of the run (see `run_dir`) and the report's path."""

    records: list[Record]
    report: Path


def student_models(config: RunConfig) -> list[str]:
    """The student model of each iteration 1..N, checked against its teacher's size."""
    models, teacher = [], check_name(config.teacher.model)
    for index in range(config.iterations):
        if config.students:
            model = check_name(config.students[min(index, len(config.students) - 1)])
        else:
            model = teacher if rung(teacher) == len(LADDER) - 1 else next_larger(teacher)
        if not is_at_least(model, teacher):
            if not config.allow_smaller_student:
                raise TrainError(
                    f"iteration {index + 1}: student {model} is smaller than its teacher "
                    f"{teacher}; pick a larger one, or set allow_smaller_student = true"
                )
            log.warning("iteration %d: student %s is smaller than %s", index + 1, model, teacher)
        if config.init_from_teacher and model != teacher:
            raise TrainError(
                f"init_from_teacher needs the student to be its teacher's model, iteration "
                f"{index + 1} has {teacher} → {model}: set students = [{teacher!r}]"
            )
        models.append(model)
        teacher = model
    return models


def student_config(config: RunConfig, iteration: int, model: str) -> TrainConfig:
    """The training job of iteration `iteration`'s student."""
    base = config.student
    index = rung(model)
    size = (
        SPECS[LADDER[index]].train_size
        if config.ladder_image_size and index is not None
        else base.image_size
    )
    ratio = (
        config.ratios[min(iteration, len(config.ratios)) - 1]
        if config.ratios
        else base.unlabeled_ratio
    )
    return replace(
        base, model=model, image_size=size, unlabeled_ratio=ratio, seed=base.seed + iteration
    )


def unnoised(config: TrainConfig) -> TrainConfig:
    """The same job without any noise: the baseline of the paper's Table 6."""
    return replace(config, noise=UNNOISED)


def prepare_data(
    config: RunConfig,
    layout: RunLayout,
    *,
    show_progress: bool = False,
    notify: Callable[[str], None] = log.info,
) -> RunData:
    """The run's shard sets: the configured ones (a source that is no shard set is sharded first,
    under `data.shards` or RUN/shards), or the digits written under RUN/data."""
    data = config.data
    if data.source == "digits":
        from ns_train.runs.digits import write_digits  # scikit-learn: only for this source

        sets = write_digits(
            layout.data,
            image_size=max(config.teacher.image_size, config.student.image_size),
            labels_per_class=data.labels_per_class,
            test_per_class=data.test_per_class,
            seed=data.seed,
            with_truth=config.oracle_baseline,
        )
        return RunData(sets.labeled, sets.unlabeled, sets.test, sets.unlabeled_truth)
    shards = RunShards(Path(data.shards) if data.shards else layout.shards, show_progress, notify)
    labeled = shards.labeled(Path(data.labeled))
    return RunData(
        labeled,
        shards.unlabeled(Path(data.unlabeled)),
        shards.labeled(Path(data.eval), "eval", like=labeled) if data.eval else None,
        (
            shards.labeled(Path(data.unlabeled_truth), "unlabeled-truth", like=labeled)
            if data.unlabeled_truth
            else None
        ),
    )


def run(
    config: RunConfig,
    out: Path,
    *,
    force: bool = False,
    show_progress: bool = True,
    notify: Callable[[str], None] = log.info,
) -> RunSummary:
    """Run (or continue) every step of `config` under `out`, then write the report.

    Under torchrun, call it on every rank with the same arguments: one process group serves all
    the steps, and only rank 0 notifies, writes and decides."""
    models = student_models(config)
    layout = RunLayout(Path(out))
    settings = to_dict(config)
    runtime = start(config.teacher.device, config.teacher.seed)
    try:
        check_ranks(runtime, config, settings, layout.root)
        with hold_output_lock(layout.root, holder=runtime.is_main):
            return _run(config, models, layout, settings, runtime, force, show_progress, notify)
    finally:
        stop(runtime)


def _run(
    config: RunConfig,
    models: list[str],
    layout: RunLayout,
    settings: dict[str, object],
    runtime: Runtime,
    force: bool,
    show_progress: bool,
    notify: Callable[[str], None],
) -> RunSummary:
    """The steps of `run`, inside the run directory's lock."""
    on_main(runtime, lambda: claim(layout, settings, force=force))
    check_shared_folder(runtime, layout)
    data = on_main(
        runtime,
        lambda: prepare_data(config, layout, show_progress=show_progress, notify=notify),
    )
    loop = _Loop(
        config,
        models,
        layout,
        data,
        runtime,
        show_progress,
        notify if runtime.is_main else _quiet,
    )
    steps = planned_steps(
        layout,
        config.iterations,
        config.unnoised_baseline,
        config.robustness.enabled,
        config.oracle_baseline,
    )
    for planned in steps:
        loop.step(planned)
    report = on_main(runtime, lambda: write_report(layout))
    return RunSummary(loop.records, report)


def _quiet(line: str) -> None:
    """The notices of ranks other than 0: rank 0 tells what the job does."""


class _Loop:
    """The work of each step; a step whose record and artifacts exist is skipped."""

    def __init__(
        self,
        config: RunConfig,
        models: list[str],
        layout: RunLayout,
        data: RunData,
        runtime: Runtime,
        show_progress: bool,
        notify: Callable[[str], None],
    ) -> None:
        self.config, self.models, self.layout, self.data = config, models, layout, data
        self.runtime, self.show_progress, self.notify = runtime, show_progress, notify
        self.records: list[Record] = broadcast(runtime, read_records(layout))
        self.work: dict[Step, Callable[[int, Path], StepValues]] = {
            Step.TEACHER: self.teacher,
            Step.LABEL: self.label,
            Step.PLAN: self.plan,
            Step.STUDENT: self.student,
            Step.UNNOISED: self.unnoised_student,
            Step.ORACLE: self.oracle_student,
            Step.ITERATION: self.summary,
            Step.ROBUSTNESS: self.robustness,
        }

    def step(self, planned: PlannedStep) -> Record:
        """Run one step unless it finished before (its record and its `done` file exist, as
        rank 0 sees them); rank 0 appends the record and every rank keeps it."""
        iteration, name = planned.iteration, planned.step
        found = find_record(self.records, iteration, name)
        if on_main(self.runtime, lambda: found is not None and _done_file(planned).exists()):
            assert found is not None
            self.notify(f"iteration {iteration}: {name} done before, skipped")
            return found
        self.notify(f"iteration {iteration}: {name}")
        started = time.perf_counter()
        values = self.work[name](iteration, planned.folder)
        record: Record = {
            "iteration": iteration,
            "step": str(name),
            **values,
            "wall_s": round(time.perf_counter() - started, 1),
        }
        record = on_main(self.runtime, lambda: _appended(self.layout, record))
        self.records.append(record)
        return record

    def record(self, iteration: int, step: Step) -> Record:
        found = find_record(self.records, iteration, step)
        assert found is not None, f"iteration {iteration}: {step} runs before it is read"
        return found

    def teacher(self, iteration: int, out: Path) -> StepValues:
        inputs = TrainInputs(labeled=self.data.labeled, eval_set=self.data.eval_set)
        return self.train(self.config.teacher, inputs, out)

    def teacher_of(self, number: int) -> Path:
        return self.layout.model_dir(number - 1) / CHECKPOINT_DIR

    def student_job(self, number: int) -> tuple[TrainConfig, TrainInputs]:
        config, layout, data = self.config, self.layout, self.data
        job = student_config(config, number, self.models[number - 1])
        inputs = TrainInputs(
            labeled=data.labeled,
            eval_set=data.eval_set,
            unlabeled=data.unlabeled,
            pseudo_labels=layout.labels(number),
            plan=layout.plan(number) / PLAN_FILE if config.filter_balance else None,
            init=self.teacher_of(number) if config.init_from_teacher else None,
        )
        return job, inputs

    def student(self, number: int, out: Path) -> StepValues:
        return self.train(*self.student_job(number), out)

    def unnoised_student(self, number: int, out: Path) -> StepValues:
        job, inputs = self.student_job(number)
        return self.train(unnoised(job), inputs, out)

    def oracle_student(self, number: int, out: Path) -> StepValues:
        """The student's job with the true labels of every unlabeled image as its targets."""
        assert self.data.unlabeled_truth is not None
        labels, truth = self.layout.oracle_labels(number), self.data.unlabeled_truth
        on_main(self.runtime, lambda: write_truth_labels(self.data.unlabeled, truth, labels))
        job, inputs = self.student_job(number)
        return self.train(job, replace(inputs, pseudo_labels=labels, plan=None), out)

    def summary(self, number: int, out: Path) -> StepValues:
        return on_main(self.runtime, lambda: self._summary(number))

    def _summary(self, number: int) -> StepValues:
        labels, plan = self.record(number, Step.LABEL), self.record(number, Step.PLAN)
        student = self.record(number, Step.STUDENT)
        previous = self.record(number - 1, Step.STUDENT if number > 1 else Step.TEACHER)
        return {
            "model": student["model"],
            "teacher_model": previous["model"],
            "teacher_top1": previous["top1"],
            "top1": student["top1"],
            "top5": student["top5"],
            "used": plan["used"],
            "kept": plan["kept"],
            "dropped": plan["dropped"],
            "duplicated": plan["duplicated"],
            "iteration_wall_s": round(sum(r["wall_s"] for r in (labels, plan, student)), 1),
        }

    def robustness(self, iterations: int, out: Path) -> StepValues:
        if self.data.eval_set is None:
            raise TrainError("the robustness step needs data.eval: the set to corrupt")
        layout = self.layout
        models = [TrainedModel("teacher", "teacher", layout.teacher / CHECKPOINT_DIR)]
        for number in range(1, iterations + 1):
            folder = layout.student(number)
            models.append(
                TrainedModel(
                    f"iteration {number} student", f"student-{number}", folder / CHECKPOINT_DIR
                )
            )
            if number == 1 and self.config.unnoised_baseline:
                unnoised_folder = layout.baseline(number) / CHECKPOINT_DIR
                models.append(
                    TrainedModel(
                        "iteration 1 unnoised student", "student-unnoised-1", unnoised_folder
                    )
                )
            if number == 1 and self.config.oracle_baseline:
                oracle_folder = layout.oracle(number) / CHECKPOINT_DIR
                models.append(TrainedModel("oracle (true labels)", "oracle-1", oracle_folder))
        return measure_robustness(
            self.config.robustness,
            self.data.eval_set,
            models,
            out,
            device=self.config.student.device,
            show_progress=self.show_progress,
            notify=self.notify,
        )

    def train(self, job: TrainConfig, inputs: TrainInputs, out: Path) -> StepValues:
        on_main(self.runtime, lambda: _clear_unstarted(out))
        result = train(job, inputs, out, resume=True, show_progress=self.show_progress)
        return _train_record(job, result)

    def label(self, number: int, out: Path) -> StepValues:
        summary = label(
            self.teacher_of(number),
            self.data.unlabeled,
            out,
            self.config.label,
            show_progress=self.show_progress,
        )
        return {
            "samples": summary.samples,
            "unreadable": summary.unreadable,
            "mean_confidence": round(summary.mean_confidence, 4),
            "images_per_s": round(summary.images_per_second, 1),
        }

    def plan(self, number: int, out: Path) -> StepValues:
        return on_main(self.runtime, lambda: self._plan(number, out))

    def _plan(self, number: int, out: Path) -> StepValues:
        config, layout = self.config, self.layout
        summary = make_plan(
            layout.labels(number),
            self.data.labeled,
            self.data.unlabeled,
            out,
            threshold=config.threshold,
            per_class=config.per_class,
        )
        totals = summary.selection.totals
        if config.filter_balance and totals["copies"] == 0:
            raise TrainError(
                f"iteration {number}: no pseudo label reaches the threshold {config.threshold:g} "
                f"(see {layout.labels(number)}/pseudo_labels.png); lower threshold or train "
                "the teacher longer"
            )
        if not config.filter_balance:  # the student reads every image once: no plan
            return {"used": totals["rows"], "kept": totals["rows"], "dropped": 0, "duplicated": 0}
        return {
            "used": totals["copies"],
            "kept": totals["kept"],
            "dropped": totals["below"] + totals["dropped"],
            "duplicated": totals["duplicates"],
        }


def _appended(layout: RunLayout, record: Record) -> Record:
    append_record(layout, record)
    return record


def _clear_unstarted(out: Path) -> None:
    """Delete a training folder killed before its first snapshot, so it starts again cleanly."""
    if out.exists() and not (out / CHECKPOINT_DIR).exists() and latest_snapshot(out) is None:
        shutil.rmtree(out)


def _done_file(planned: PlannedStep) -> Path:
    """The file whose presence (beside the step's record) shows the step finished."""
    if planned.step in TRAINED or planned.step is Step.ITERATION:
        return planned.folder / CHECKPOINT_DIR
    if planned.step is Step.LABEL:
        return planned.folder / LABELS_SUMMARY
    if planned.step is Step.ROBUSTNESS:
        return planned.folder / "data" / CORRUPTIONS_RECORD
    return planned.folder / PLAN_FILE


def _train_record(job: TrainConfig, result: TrainResult) -> StepValues:
    scores = result.eval
    return {
        "model": job.model,
        "image_size": job.image_size,
        "steps": result.steps,
        "images_per_s": round(result.images_per_second, 1),
        "top1": scores.top1 if scores else None,
        "top5": scores.top5 if scores else None,
        "per_class": scores.per_class if scores else None,
    }
