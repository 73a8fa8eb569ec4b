"""`ns demo`: the `digits-demo` preset run by the Noisy Student loop, with the method's checks.

digits → teacher → two noisy-student iterations, plus an unnoised student of iteration 1, then
every model on corrupted test digits; the checks compare them as the paper does (student >
teacher, iteration 2 > 1, noise helps, noisy students are more robust to corruptions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ns_train.config import replace
from ns_train.runs.config import RunConfig
from ns_train.runs.folder import Step, find_record
from ns_train.runs.loop import RunSummary, run
from ns_train.runs.presets import preset


def demo_config(seed: int = 0) -> RunConfig:
    """The `digits-demo` preset with `seed` for the data split, the initial weights and noise."""
    config = preset("digits-demo")
    return replace(
        config,
        teacher=replace(config.teacher, seed=seed),
        student=replace(config.student, seed=seed),
        robustness=replace(config.robustness, seed=seed),
    )


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Top-1 of the four models on the test set, the run's wall time and its summary."""

    teacher: float
    student_1: float
    student_2: float
    unnoised_1: float
    mce: dict[str, float]
    """mCE of each model on the corrupted test digits, the teacher's = 1.0 (empty: not run)."""
    seconds: float
    summary: RunSummary

    def checks(self) -> list[tuple[str, bool]]:
        """The paper's claims on this run: (statement, holds)."""
        gain, unnoised_gain = self.student_1 - self.teacher, self.unnoised_1 - self.teacher
        return [
            (f"the noisy student beats its teacher (+{100 * gain:.1f} points)", gain > 0),
            (
                f"iteration 2 beats iteration 1 ({100 * (self.student_2 - self.student_1):+.1f})",
                self.student_2 > self.student_1,
            ),
            (
                f"without noise the student gains less ({100 * unnoised_gain:+.1f} vs "
                f"{100 * gain:+.1f})",
                unnoised_gain < gain,
            ),
            *self._robustness_checks(),
        ]

    def _robustness_checks(self) -> list[tuple[str, bool]]:
        if not self.mce:
            return []
        student_1, student_2 = self.mce["iteration 1 student"], self.mce["iteration 2 student"]
        unnoised = self.mce["iteration 1 unnoised student"]
        return [
            (
                f"the noisy students are more robust to corruptions than the teacher (mCE "
                f"{100 * student_1:.1f} and {100 * student_2:.1f}, teacher 100)",
                student_1 < 1 and student_2 < 1,
            ),
            (
                f"without noise the student is less robust (mCE {100 * unnoised:.1f} vs "
                f"{100 * student_1:.1f})",
                unnoised > student_1,
            ),
        ]


def run_demo(
    out: Path,
    *,
    seed: int = 0,
    force: bool = False,
    show_progress: bool = True,
    notify: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run (or continue) the demo under `out`; a finished demo returns at once."""
    extra = {} if notify is None else {"notify": notify}
    summary = run(demo_config(seed), out, force=force, show_progress=show_progress, **extra)

    def top1(iteration: int, step: Step) -> float:
        record = find_record(summary.records, iteration, step)
        assert record is not None and record["top1"] is not None
        return float(record["top1"])

    return DemoResult(
        teacher=top1(0, Step.TEACHER),
        student_1=top1(1, Step.STUDENT),
        student_2=top1(2, Step.STUDENT),
        unnoised_1=top1(1, Step.UNNOISED),
        mce=_mce(summary),
        seconds=sum(r["wall_s"] for r in summary.records if r["step"] != Step.ITERATION),
        summary=summary,
    )


def _mce(summary: RunSummary) -> dict[str, float]:
    record = find_record(summary.records, 2, Step.ROBUSTNESS)
    if record is None:
        return {}
    scores = record["models"].items()
    return {label: s["mce_vs_teacher"] for label, s in scores if s["mce_vs_teacher"] is not None}
