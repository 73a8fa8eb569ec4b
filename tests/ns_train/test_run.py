"""The Noisy Student loop on tiny jobs: layout, records, report, skipping, resume, status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from testkit import tiny_config

from ns_data.labels.store import PseudoLabels
from ns_data.loading.config import LoaderConfig
from ns_data.shards.reader import ShardSet
from ns_train.config import LabelConfig
from ns_train.errors import TrainError
from ns_train.labeler import label
from ns_train.runs.config import DataConfig, RunConfig, run_config_from_dict
from ns_train.runs.digits import DigitsSplits
from ns_train.runs.folder import RunLayout, read_records
from ns_train.runs.loop import RunSummary, run
from ns_train.runs.status import run_status


def tiny_run(digits: DigitsSplits, **changes: object) -> RunConfig:
    """One student iteration plus the unnoised baseline, a few steps each."""
    base = RunConfig(
        data=DataConfig(
            labeled=str(digits.labeled), unlabeled=str(digits.unlabeled), eval=str(digits.test)
        ),
        iterations=1,
        teacher=tiny_config(),
        student=tiny_config(epochs=0.1, checkpoint_every=2),
        students=("efficientnet_b0",),
        threshold=0.0,
        unnoised_baseline=True,
        label=LabelConfig(device="cpu", loader=LoaderConfig(backend="torch", workers=0)),
        label_batch_size=512,  # ns 0.2's spelling of label.batch_size, still read
    )
    return run_config_from_dict(changes, base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> RunSummary:
    return run(tiny_run(digits), tmp_path_factory.mktemp("run") / "run", show_progress=False)


def test_a_run_writes_the_layout_records_and_report(finished: RunSummary) -> None:
    root = finished.report.parent
    for path in ("iter-0/teacher/checkpoint", "iter-1/labels/summary.json", "iter-1/plan/plan.npy"):
        assert (root / path).exists(), path
    assert (root / "iter-1/student/checkpoint").exists()
    assert (root / "iter-1/student-unnoised/checkpoint").exists()
    steps = [(r["iteration"], r["step"]) for r in finished.records]
    assert steps == [
        (0, "teacher"),
        (1, "label"),
        (1, "plan"),
        (1, "student"),
        (1, "student-unnoised"),
        (1, "iteration"),
    ]
    student = finished.records[3]
    assert 0 <= student["top1"] <= 1 and len(student["per_class"]) == 10
    assert finished.records[-1]["teacher_top1"] == finished.records[0]["top1"]
    report = finished.report.read_text()
    assert "| 1 (no noise) |" in report and "efficientnet_b0 @ 32 px" in report
    for plot in ("accuracy.png", "confidence.png", "per_class.png"):
        assert (root / plot).stat().st_size > 0
    stored = json.loads((root / "run_config.json").read_text())
    assert stored["iterations"] == 1


def test_a_second_run_skips_every_step(finished: RunSummary, digits: DigitsSplits) -> None:
    said: list[str] = []
    again = run(tiny_run(digits), finished.report.parent, show_progress=False, notify=said.append)
    assert all("skipped" in line for line in said) and len(said) == 6
    assert again.records == finished.records


def test_another_config_is_refused_unless_forced(
    finished: RunSummary, digits: DigitsSplits, tmp_path: Path
) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished.report.parent, root)
    with pytest.raises(
        TrainError, match=r"made by another config \(differs in iterations\).*--force"
    ):
        run(tiny_run(digits, iterations=2), root, show_progress=False)
    said: list[str] = []
    run(tiny_run(digits, iterations=2), root, force=True, show_progress=False, notify=said.append)
    assert said[:6] == [line for line in said[:6] if "skipped" in line]
    assert said[6:] == [
        f"iteration 2: {step}" for step in ("label", "plan", "student", "iteration")
    ]
    assert [s.state for s in run_status(root)] == ["done"] * 8


def test_an_interrupted_student_resumes_and_earlier_steps_are_skipped(
    finished: RunSummary, digits: DigitsSplits, tmp_path: Path
) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished.report.parent, root)
    layout = RunLayout(root)
    shutil.rmtree(layout.student(1) / "checkpoint")  # killed after its snapshot at step 2
    kept = read_records(layout)[:3]
    layout.metrics.write_text("".join(json.dumps(r) + "\n" for r in kept))
    status = {s.step: s for s in run_status(root)}
    assert status["student"].state == "partial" and status["plan"].state == "done"
    unrecorded = status["student-unnoised"]  # its checkpoint is there, its record is not
    assert (unrecorded.state, unrecorded.detail) == ("partial", "finished, not yet recorded")
    said: list[str] = []
    run(tiny_run(digits), root, show_progress=False, notify=said.append)
    assert said[:3] == [
        "iteration 0: teacher done before, skipped",
        "iteration 1: label done before, skipped",
        "iteration 1: plan done before, skipped",
    ]
    assert "iteration 1: student" in said
    assert [s.state for s in run_status(root)] == ["done"] * 5


def test_status_of_a_folder_that_is_no_run(tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="not a run directory"):
        run_status(tmp_path)


def test_status_of_a_robustness_step_on_extra_corruptions_only() -> None:
    """Extra corruptions have no AlexNet baseline, so the step's mCE is None: shown as "—"."""
    from ns_train.runs.status import _done_detail

    scores = {"folder": "teacher", "mce_vs_teacher": None, "mce_vs_alexnet": None, "error": {}}
    record = {"iteration": 1, "step": "robustness", "wall_s": 3.0, "models": {"teacher": scores}}
    assert _done_detail(record) == "mCE vs teacher: teacher —, 3.0 s"


def restart_iteration_1(finished: RunSummary, root: Path) -> RunLayout:
    """A copy of the finished run with only its teacher kept."""
    shutil.copytree(finished.report.parent, root)
    layout = RunLayout(root)
    shutil.rmtree(layout.iteration(1))
    layout.metrics.write_text(json.dumps(read_records(layout)[0]) + "\n")
    return layout


def test_filter_off_uses_every_image_once(
    finished: RunSummary, digits: DigitsSplits, tmp_path: Path
) -> None:
    layout = restart_iteration_1(finished, tmp_path / "run")
    config = tiny_run(digits, filter_balance=False, unnoised_baseline=False, threshold=0.99)
    summary = run(config, layout.root, force=True, show_progress=False)
    plan = next(r for r in summary.records if r["step"] == "plan")
    assert plan["used"] == plan["kept"] == len(PseudoLabels(layout.labels(1)))
    assert plan["dropped"] == 0


def test_a_noised_teacher_labels_differently(finished: RunSummary, tmp_path: Path) -> None:
    layout = RunLayout(finished.report.parent)
    fast = {"backend": "torch", "device": "cpu", "workers": 0, "show_progress": False}
    config = json.loads(layout.config.read_text())
    unlabeled = Path(config["data"]["unlabeled"])
    label(layout.teacher / "checkpoint", unlabeled, tmp_path, noised=True, **fast)
    clean = PseudoLabels(layout.labels(1)).top1()[1].astype(np.float32)
    noised = PseudoLabels(tmp_path).top1()[1].astype(np.float32)
    assert not np.allclose(clean, noised)


def test_the_robustness_step_adds_to_a_finished_run(
    finished: RunSummary, digits: DigitsSplits, tmp_path: Path
) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished.report.parent, root)
    robustness = {
        "enabled": True,
        "corruptions": ["gaussian_noise", "contrast", "spatter"],
        "severities": [1, 5],
        "images_per_class": 2,
        "backend": "torch",
    }
    config = tiny_run(digits, robustness=robustness)
    said: list[str] = []
    summary = run(config, root, force=True, show_progress=False, notify=said.append)
    record = summary.records[-1]
    assert record["step"] == "robustness" and record["units"] == 6
    models = record["models"]
    assert list(models) == ["teacher", "iteration 1 student", "iteration 1 unnoised student"]
    assert models["teacher"]["mce_vs_teacher"] == pytest.approx(1.0)
    assert set(models["teacher"]["error"]) == {"gaussian_noise", "contrast", "spatter"}
    assert (root / "robustness/student-1/imagenet-c.json").is_file()
    report = (root / "report.md").read_text()
    assert "Robustness to corruptions" in report and (root / "robustness.png").is_file()
    assert [s.state for s in run_status(root)][-1] == "done"
    again: list[str] = []
    run(config, root, show_progress=False, notify=again.append)
    assert again[-1] == "iteration 1: robustness done before, skipped"


def test_the_oracle_baseline_trains_on_the_true_labels(tmp_path: Path) -> None:
    from ns_train.runs.digits import write_digits

    sets = write_digits(tmp_path / "d", labels_per_class=5, test_per_class=10, with_truth=True)
    assert sets.unlabeled_truth is not None
    config = tiny_run(
        sets,
        unnoised_baseline=False,
        oracle_baseline=True,
        data={"unlabeled_truth": str(sets.unlabeled_truth)},
    )
    summary = run(config, tmp_path / "run", show_progress=False)
    steps = [r["step"] for r in summary.records]
    assert steps == ["teacher", "label", "plan", "student", "student-oracle", "iteration"]
    truth = PseudoLabels(tmp_path / "run/iter-1/oracle-labels")
    top_class, confidence = truth.top1()
    assert np.array_equal(top_class, ShardSet(sets.unlabeled_truth).labels)
    assert np.all(confidence == 1)
    assert "(oracle: true labels)" in summary.report.read_text()
    assert [s.step for s in run_status(tmp_path / "run")][-1] == "student-oracle"


def test_an_oracle_on_own_shards_needs_their_true_labels(digits: DigitsSplits) -> None:
    with pytest.raises(TrainError, match=r"oracle_baseline needs data\.unlabeled_truth"):
        tiny_run(digits, oracle_baseline=True)
