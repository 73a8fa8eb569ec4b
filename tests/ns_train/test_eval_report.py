"""`ns eval`: the evaluation report, class matching by name, folders, and the robustness suites."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.progress import Progress
from typer.testing import CliRunner

from ns_cli.main import app
from ns_data.shards.reader import ShardSet
from ns_train.errors import TrainError
from ns_train.evaluation.report import evaluate_checkpoint, write_eval_report
from ns_train.evaluation.suites import evaluate_imagenet_a, evaluate_imagenet_c, find_units
from ns_train.runs.digits import DigitsSplits
from ns_train.trainer import TrainResult

CPU = {"backend": "torch", "device": "cpu", "workers": 0, "batch_size": 32}


def export_folder(shards: Path, out: Path, classes: set[str] | None = None) -> Path:
    """The images of a labeled shard set as class folders (`out/CLASS/KEY.jpg`)."""
    data = ShardSet(shards)
    names = data.manifest.classes
    for row, label in enumerate(data.labels):
        name = names[int(label)]
        if classes is None or name in classes:
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / f"img{row:04d}.jpg").write_bytes(data.read_image(row))
    return out


@pytest.fixture(scope="module")
def test_folder(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSplits) -> Path:
    return export_folder(digits.test, tmp_path_factory.mktemp("folder") / "test")


def test_report_on_the_shard_set_matches_the_trainer_eval(
    teacher: TrainResult, digits: DigitsSplits
) -> None:
    report = evaluate_checkpoint(teacher.checkpoint, digits.test, **CPU)
    assert teacher.eval is not None
    assert report.count == teacher.eval.count == 100
    assert report.top1 == pytest.approx(teacher.eval.top1)
    assert report.top5 == pytest.approx(teacher.eval.top5)
    assert report.nll == pytest.approx(teacher.eval.loss, rel=1e-5)
    assert list(report.per_class.values()) == pytest.approx(teacher.eval.per_class)
    assert 0.0 <= report.ece <= 1.0
    assert report.sums.bin_count.sum() == report.count == report.sums.confusion.sum()


def test_a_folder_with_a_subset_of_classes_matches_by_name(
    teacher: TrainResult, digits: DigitsSplits, tmp_path: Path
) -> None:
    full = evaluate_checkpoint(teacher.checkpoint, digits.test, **CPU)
    folder = export_folder(digits.test, tmp_path / "sub", {"3", "7"})
    report = evaluate_checkpoint(teacher.checkpoint, folder, **CPU)
    assert report.class_names == ["3", "7"] and report.count == 20
    assert report.per_class["3"] == pytest.approx(full.per_class["3"])
    assert report.per_class["7"] == pytest.approx(full.per_class["7"])
    assert report.sums.confusion.shape == (2, 10)
    restricted = evaluate_imagenet_a(teacher.checkpoint, folder, **CPU)
    assert restricted.sums.confusion.shape == (2, 2) and restricted.restricted
    assert restricted.top1 >= report.top1  # only the two present classes can be predicted


def test_limit_per_class_takes_the_first_images_of_each_class(
    teacher: TrainResult, test_folder: Path
) -> None:
    report = evaluate_checkpoint(teacher.checkpoint, test_folder, limit_per_class=2, **CPU)
    assert report.count == 20 and set(report.sums.confusion.sum(axis=1)) == {2}


def test_unknown_class_names_are_refused_naming_them(
    teacher: TrainResult, test_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "odd"
    shutil.copytree(test_folder / "1", folder / "cat")
    shutil.copytree(test_folder / "2", folder / "2")
    with pytest.raises(TrainError, match=r"1 classes the checkpoint does not know \(cat\)"):
        evaluate_checkpoint(teacher.checkpoint, folder, **CPU)


def test_report_files(teacher: TrainResult, digits: DigitsSplits, tmp_path: Path) -> None:
    report = evaluate_checkpoint(teacher.checkpoint, digits.test, **CPU)
    written = write_eval_report(report, tmp_path / "eval")
    assert all(path.is_file() and path.stat().st_size > 0 for path in written)
    stored = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert stored["top1"] == pytest.approx(report.top1) and len(stored["per_class"]) == 10
    assert np.load(tmp_path / "eval" / "confusion.npy").sum() == 100
    assert "| top-1 | top-5 | NLL | ECE (15 bins) |" in (tmp_path / "eval" / "eval.md").read_text()


def imagenet_c_tree(root: Path, folder: Path, units: dict[str, list[int]]) -> Path:
    """ImageNet-C's layout, each unit a copy of `folder` (the error per unit is then the clean
    error: what matters here is the bookkeeping)."""
    for corruption, severities in units.items():
        for severity in severities:
            shutil.copytree(folder, root / corruption / str(severity))
    return root


def test_imagenet_c_suite_saves_units_resumes_and_normalizes(
    teacher: TrainResult, test_folder: Path, tmp_path: Path
) -> None:
    root = imagenet_c_tree(
        tmp_path / "c", test_folder, {"gaussian_noise": [1, 2], "contrast": [5], "spatter": [1]}
    )
    out = tmp_path / "out"
    first = evaluate_imagenet_c(teacher.checkpoint, root, out, clean=test_folder, **CPU)
    assert first.evaluated == 5 and first.reused == 0
    clean_error = first.clean_error
    assert clean_error is not None
    assert first.errors["gaussian_noise"][1] == pytest.approx(clean_error)
    assert first.summary.benchmark == ("gaussian_noise", "contrast")
    assert "spatter" in first.summary.extra and first.summary.mce is not None
    again = evaluate_imagenet_c(teacher.checkpoint, root, out, clean=test_folder, **CPU)
    assert again.evaluated == 0 and again.reused == 5
    assert again.errors == first.errors
    versus_itself = evaluate_imagenet_c(
        teacher.checkpoint, root, out, baseline=out / "imagenet-c.json", **CPU
    )
    assert versus_itself.summary.mce == pytest.approx(1.0)
    table = (out / "imagenet-c.md").read_text()
    assert "gaussian_noise" in table and "spatter (extra)" in table
    assert (out / "imagenet-c.png").stat().st_size > 0


@pytest.mark.parametrize("with_clean", [True, False], ids=["clean", "no-clean"])
def test_imagenet_c_progress_ends_at_its_total(
    teacher: TrainResult,
    test_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_clean: bool,
) -> None:
    """One step per unit and one for the clean set when there is one (the demo showed 96/95)."""
    import ns_train.evaluation.suites as suites

    shown = suites.job_progress
    made: list[Progress] = []

    def recording(enabled: bool = True) -> Progress:
        made.append(shown(False))
        return made[-1]

    monkeypatch.setattr(suites, "job_progress", recording)
    root = imagenet_c_tree(tmp_path / "c", test_folder, {"gaussian_noise": [1, 2]})
    clean = test_folder if with_clean else None
    evaluate_imagenet_c(teacher.checkpoint, root, tmp_path / "out", clean=clean, **CPU)
    (task,) = made[0].tasks
    assert task.total == 2 + with_clean and task.completed == task.total


def test_imagenet_c_layout_errors_name_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    with pytest.raises(TrainError, match=r"no corruption folders \(found photos\)"):
        find_units(tmp_path)
    (tmp_path / "fog" / "3").mkdir(parents=True)
    with pytest.raises(TrainError, match=r"fog/3 holds no class folders"):
        find_units(tmp_path)
    (tmp_path / "fog" / "3").rmdir()
    (tmp_path / "fog" / "9").mkdir(parents=True)
    with pytest.raises(TrainError, match="not a severity folder"):
        find_units(tmp_path)


def test_ns_eval_cli_writes_the_report(
    teacher: TrainResult, test_folder: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(teacher.checkpoint),
            "--data",
            str(test_folder),
            "--out",
            str(tmp_path / "eval"),
            "--backend",
            "torch",
            "--device",
            "cpu",
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "ECE" in result.output
    assert (tmp_path / "eval" / "reliability.png").is_file()


def test_ns_corrupt_then_the_imagenet_c_suite_through_the_cli(
    teacher: TrainResult, digits: DigitsSplits, tmp_path: Path
) -> None:
    runner, corrupted, out = CliRunner(), tmp_path / "test-c", tmp_path / "out"
    made = runner.invoke(
        app,
        [
            "corrupt",
            str(digits.test),
            str(corrupted),
            *("--corruption", "gaussian_noise", "--corruption", "pixelate"),
            *("--severity", "1", "--severity", "5"),
            *("--limit-per-class", "3", "--workers", "1"),
        ],
    )
    assert made.exit_code == 0, made.output
    suite = [
        "eval",
        *("--checkpoint", str(teacher.checkpoint), "--suite", "imagenet-c"),
        *("--data", str(corrupted), "--clean", str(digits.test), "--out", str(out)),
        *("--backend", "torch", "--device", "cpu", "--workers", "0"),
    ]
    result = runner.invoke(app, suite)
    assert result.exit_code == 0, result.output
    assert "| gaussian_noise |" in result.output and "relative mCE" in result.output
    stored = json.loads((out / "imagenet-c.json").read_text())
    assert set(stored["errors"]) == {"gaussian_noise", "pixelate"}
    assert sorted(stored["errors"]["pixelate"]) == ["1", "5"]
    assert len(list((out / "units").glob("*.json"))) == 5  # 4 units and the clean set


def test_ns_perturb_then_the_imagenet_p_suite_through_the_cli(
    teacher: TrainResult, digits: DigitsSplits, tmp_path: Path
) -> None:
    runner, sequences, out = CliRunner(), tmp_path / "test-p", tmp_path / "out"
    made = runner.invoke(
        app,
        [
            *("perturb", str(digits.test), str(sequences)),
            *("--perturbation", "gaussian_noise", "--perturbation", "rotate"),
            *("--limit-per-class", "1", "--workers", "1"),
        ],
    )
    assert made.exit_code == 0, made.output
    (sequences / "rotate" / "3" / "broken.mp4").write_bytes(b"not a video")
    suite = [
        *("eval", "--checkpoint", str(teacher.checkpoint), "--suite", "imagenet-p"),
        *("--data", str(sequences), "--out", str(out), "--device", "cpu"),
    ]
    first = runner.invoke(app, suite)
    assert first.exit_code == 0, first.output
    assert "| gaussian_noise |" in first.output and "No mFR" in first.output
    stored = json.loads((out / "imagenet-p.json").read_text())
    assert set(stored["flip_probability"]) == {"gaussian_noise", "rotate"}
    assert all(0.0 <= fp <= 1.0 for fp in stored["flip_probability"].values())
    assert [Path(p).name for p in stored["unreadable"]["rotate"]] == ["broken.mp4"]
    versus_itself = runner.invoke(app, [*suite, "--baseline", str(out / "imagenet-p.json")])
    assert versus_itself.exit_code == 0, versus_itself.output
    rated = json.loads((out / "imagenet-p.json").read_text())
    flipped = {name for name, fp in stored["flip_probability"].items() if fp > 0}
    assert set(rated["flip_rate"]) == flipped  # a baseline that never flips rates nothing
    assert all(rate == pytest.approx(1.0) for rate in rated["flip_rate"].values())
    assert rated["mfr"] == (pytest.approx(1.0) if flipped else None)
