"""`ns label` and `ns select` on the command line: summaries, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ns_cli.commands import label, select
from ns_cli.errors import ReportingGroup
from ns_train.runs.digits import DigitsSplits

FAST = ["--backend", "torch", "--device", "cpu", "--workers", "0", "--batch-size", "16"]


def app() -> typer.Typer:
    """The two commands mounted alone, as `ns` mounts them (its group maps errors to a line)."""
    ns = typer.Typer(cls=ReportingGroup)
    ns.callback()(lambda: None)
    label.register(ns)
    select.register(ns)
    return ns


@pytest.fixture
def sets(small_sets: DigitsSplits) -> DigitsSplits:
    return small_sets


@pytest.fixture
def teacher(small_teacher: Path) -> Path:
    return small_teacher


@pytest.fixture(scope="module")
def labels(
    tmp_path_factory: pytest.TempPathFactory, small_sets: DigitsSplits, small_teacher: Path
) -> Path:
    out = tmp_path_factory.mktemp("labels")
    args = ["label", "--checkpoint", str(small_teacher), "--unlabeled", str(small_sets.unlabeled)]
    args += ["--out", str(out)]
    result = CliRunner().invoke(app(), [*args, *FAST])
    assert result.exit_code == 0, result.output
    assert "147 images labeled" in result.output and "4 shards now" in result.output
    return out


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app(), [str(a) for a in args])
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, *fragments: str) -> None:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "Traceback" not in output, output
    assert all(f in output for f in fragments), output


def test_select_writes_a_plan(labels: Path, sets: DigitsSplits, tmp_path: Path) -> None:
    code, output = invoke(
        "select", "--pseudo-labels", labels, "--labeled", sets.labeled, "--unlabeled", sets.unlabeled,
        "--out", tmp_path, "--threshold", "0", "--per-class", "10",
    )  # fmt: skip
    assert code == 0, output
    assert "147 images → 10 kept" in output
    assert np.load(tmp_path / "plan.npy", allow_pickle=False).shape == (147,)
    code, output = invoke(
        "select", "--pseudo-labels", labels, "--labeled", sets.labeled, "--unlabeled", sets.unlabeled,
        "--out", tmp_path, "--threshold", "0", "--per-class", "10", "--json",
    )  # fmt: skip
    scripted = json.loads(output)
    assert code == 0 and scripted["plan"] == str(tmp_path / "plan.npy")
    assert (scripted["rows"], scripted["kept"], scripted["threshold"]) == (147, 10, 0.0)


def test_label_missing_teacher(sets: DigitsSplits, tmp_path: Path) -> None:
    code, output = invoke(
        "label",
        "--checkpoint",
        tmp_path / "nope",
        "--unlabeled",
        sets.unlabeled,
        "--out",
        tmp_path,
        *FAST,
    )
    assert_one_line_error(code, output, "nope", "config.json")


def test_label_data_that_is_not_a_shard_set(teacher: Path, tmp_path: Path) -> None:
    code, output = invoke(
        "label", "--checkpoint", teacher, "--unlabeled", tmp_path, "--out", tmp_path / "l", *FAST
    )
    assert_one_line_error(code, output, "not a finished shard set")


def test_label_refuses_another_teachers_folder(
    labels: Path, sets: DigitsSplits, teacher: Path
) -> None:
    code, output = invoke(
        "label", "--checkpoint", teacher, "--unlabeled", sets.unlabeled, "--out", labels,
        "--temperature", "2", *FAST,
    )  # fmt: skip
    assert_one_line_error(code, output, "another teacher", "--overwrite")


def test_select_unlabeled_that_is_not_a_shard_set(
    labels: Path, sets: DigitsSplits, tmp_path: Path
) -> None:
    code, output = invoke(
        "select", "--pseudo-labels", labels, "--labeled", sets.labeled, "--unlabeled", tmp_path,
        "--out", tmp_path / "plan",
    )  # fmt: skip
    assert_one_line_error(code, output, "not a finished shard set")


def test_select_labels_for_another_set(labels: Path, sets: DigitsSplits, tmp_path: Path) -> None:
    code, output = invoke(
        "select", "--pseudo-labels", labels, "--labeled", sets.labeled, "--unlabeled", sets.test,
        "--out", tmp_path,
    )  # fmt: skip
    assert_one_line_error(code, output, "no pseudo labels for shard test-000000.tar")
    assert not (tmp_path / "plan.npy").exists()
