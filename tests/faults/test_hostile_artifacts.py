"""Hostile files between the steps: pseudo labels from another teacher or with wrong shapes,
checkpoint folders holding pickles (whose payload must never run), wrong weights and configs,
and TOML configs with unknown fields, wrong types and values out of range.

Each is refused before any work starts with one line (exit 1) naming the file or field and the
fix, through the real commands (`ns train`, `ns label`, `ns run`) run in this process.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ns_cli.main import app
from ns_models.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from ns_train.runs.digits import DigitsSplits
from ns_train.trainer import TrainResult

SETTINGS = {"image_size": "32", "batch_size": "16", "backend": "'torch'", "workers": "0"}
SETTINGS |= {"device": "'cpu'", "epochs": "0.1"}


def settings(but: str = "") -> list[str]:
    """`--set` options of a tiny CPU job, leaving out the fields named in `but`."""
    return [a for k, v in SETTINGS.items() if k not in but for a in ("--set", f"{k}={v}")]


FAST = settings()
LABEL = ["--backend", "torch", "--device", "cpu", "--workers", "0"]


def ns(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def one_line_error(code: int, output: str) -> str:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


# --- pseudo labels -------------------------------------------------------------------------

LABELS = "unlabeled-000001.labels.safetensors"
"""The file each case damages (the second of the four shards' files)."""


def _edit(tensors: dict[str, np.ndarray], meta: dict[str, str], case: str) -> None:
    teacher = json.loads(meta["teacher"])
    if case == "another-teacher":
        meta["teacher"] = json.dumps({**teacher, "teacher_id": "0123456789abcdef"})
    elif case == "class-out-of-range":
        tensors["topk_class"][:, 0] = 57
    elif case == "negative-class":
        tensors["topk_class"][5, 0] = -3
    elif case == "other-k":
        tensors["topk_class"] = np.concatenate([tensors["topk_class"]] * 2, axis=1)
        tensors["topk_prob"] = np.concatenate([tensors["topk_prob"]] * 2, axis=1)
    elif case == "no-probabilities":
        del tensors["topk_prob"]
    elif case == "nan-probabilities":
        tensors["topk_prob"][3, 0] = np.nan
    elif case == "ids-as-a-column":
        tensors["sample_id"] = tensors["sample_id"][:, None]
    elif case == "float-classes":
        tensors["topk_class"] = tensors["topk_class"].astype(np.float32)
    elif case == "rows-missing":
        for name in tensors:
            tensors[name] = tensors[name][:-10]


PSEUDO_CASES = {
    "another-teacher": rf"{LABELS} was made by another teacher or settings .*one teacher",
    "class-out-of-range": rf"{LABELS} names classes 0\.\.57, outside its teacher's 10 classes",
    "negative-class": rf"{LABELS} names classes -3\.\.\d, outside",
    "other-k": rf"{LABELS} holds sample_id \(500,\), topk_class \(500, 20\)",
    "no-probabilities": rf"{LABELS} has no topk_prob tensor; delete it and rerun `ns label`",
    "nan-probabilities": rf"{LABELS} holds probabilities outside \[0, 1\] \(or NaN\)",
    "ids-as-a-column": rf"{LABELS} holds sample_id \(500, 1\)",
    "float-classes": rf"{LABELS} holds int64 ids, float32 classes",
    "rows-missing": r"sample 99\d has no pseudo label in .*; rerun `ns label`",
}


@pytest.mark.parametrize("case", list(PSEUDO_CASES))
def test_bad_pseudo_labels_are_refused_before_training(
    tmp_path: Path, digits: DigitsSplits, labels_uninterrupted: Path, case: str
) -> None:
    labels = tmp_path / "labels"
    shutil.copytree(labels_uninterrupted, labels)
    path = labels / LABELS
    with safe_open(str(path), framework="numpy") as handle:
        meta = dict(handle.metadata() or {})
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    _edit(tensors, meta, case)
    save_numpy(tensors, str(path), metadata=meta)
    student = ["--unlabeled", digits.unlabeled, "--pseudo-labels", labels]
    line = one_line_error(
        *ns("train", "--labeled", digits.labeled, *student, "--out", tmp_path / "job", *FAST)
    )
    assert re.search(PSEUDO_CASES[case], line), line
    assert not (tmp_path / "job" / "checkpoint").exists()


def test_pseudo_labels_of_a_teacher_with_other_classes_are_refused(
    tmp_path: Path, digits: DigitsSplits, labels_uninterrupted: Path
) -> None:
    labels = tmp_path / "labels"
    shutil.copytree(labels_uninterrupted, labels)
    for path in labels.glob("*.labels.safetensors"):
        with safe_open(str(path), framework="numpy") as handle:
            meta = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        teacher = json.loads(meta["teacher"])
        names = [f"class{n}" for n in range(len(teacher["class_names"]))]
        meta["teacher"] = json.dumps({**teacher, "class_names": names})
        save_numpy(tensors, str(path), metadata=meta)
    student = ["--unlabeled", digits.unlabeled, "--pseudo-labels", labels]
    line = one_line_error(
        *ns("train", "--labeled", digits.labeled, *student, "--out", tmp_path / "job", *FAST)
    )
    assert "was made by a teacher with classes ['class0'" in line
    assert "relabel with a teacher trained on these classes" in line


# --- checkpoints ---------------------------------------------------------------------------


class Payload:
    """Unpickling this creates `marker`: it stands for code hidden in a weights file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


def _pickle_as_safetensors(folder: Path, marker: Path) -> None:
    (folder / WEIGHTS_FILE).write_bytes(pickle.dumps({"conv_stem.weight": Payload(marker)}))


def _torch_pickle_only(folder: Path, marker: Path) -> None:
    (folder / WEIGHTS_FILE).unlink()
    torch.save(
        {"conv_stem.weight": torch.zeros(1), "x": Payload(marker)}, folder / "pytorch_model.bin"
    )


def _pth_only(folder: Path, marker: Path) -> None:
    (folder / WEIGHTS_FILE).unlink()
    torch.save({"x": Payload(marker)}, folder / "model.pth")


def _wrong_shape(folder: Path, marker: Path) -> None:
    weights = load_file(str(folder / WEIGHTS_FILE))
    weights["conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    save_file(weights, str(folder / WEIGHTS_FILE))


def _unknown_model(folder: Path, marker: Path) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    key = "architecture" if "architecture" in config else "model_name"
    config[key] = "efficientnet_b99"
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def _integer_weights(folder: Path, marker: Path) -> None:
    weights = load_file(str(folder / WEIGHTS_FILE))
    save_file({k: v.to(torch.int32) for k, v in weights.items()}, str(folder / WEIGHTS_FILE))


def _bool_weight(folder: Path, marker: Path) -> None:
    weights = load_file(str(folder / WEIGHTS_FILE))
    weights["conv_stem.weight"] = weights["conv_stem.weight"] > 0
    save_file(weights, str(folder / WEIGHTS_FILE))


CHECKPOINT_CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "pickle-named-safetensors": (
        _pickle_as_safetensors,
        rf"{WEIGHTS_FILE} is not valid safetensors",
    ),
    "pytorch_model.bin-pickle": (
        _torch_pickle_only,
        r"pytorch_model\.bin is not a plain tensor state dict and was not unpickled",
    ),
    "model.pth-only": (_pth_only, rf"no {WEIGHTS_FILE} or pytorch_model\.bin"),
    "wrong-shape": (_wrong_shape, r"conv_stem\.weight has shape \(8, 3, 3, 3\), the model expects"),
    "unknown-model": (_unknown_model, r"unknown model 'efficientnet_b99'.*did you mean"),
    "integer-weights": (
        _integer_weights,
        rf"{WEIGHTS_FILE}: \S+ is torch\.int32, the model expects torch\.float32",
    ),
    "bool-weight": (
        _bool_weight,
        rf"{WEIGHTS_FILE}: conv_stem\.weight is torch\.bool, the model expects torch\.float32",
    ),
}


@pytest.mark.parametrize("command", ["label", "train --init"])
@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoints_are_refused_and_pickles_never_run(
    tmp_path: Path, digits: DigitsSplits, teacher: TrainResult, case: str, command: str
) -> None:
    folder, marker = tmp_path / "checkpoint", tmp_path / "payload-ran"
    shutil.copytree(teacher.checkpoint, folder)
    make, message = CHECKPOINT_CASES[case]
    make(folder, marker)
    if command == "label":
        args = [
            "label",
            "--checkpoint",
            folder,
            "--unlabeled",
            digits.unlabeled,
            "--out",
            tmp_path / "l",
            *LABEL,
        ]
    else:
        args = [
            "train",
            "--labeled",
            digits.labeled,
            "--init",
            folder,
            "--out",
            tmp_path / "j",
            *FAST,
        ]
    line = one_line_error(*ns(*args))
    assert re.search(message, line), line
    assert not marker.exists(), "the pickle's payload ran"


def test_the_payload_is_live(tmp_path: Path) -> None:
    """The payload is real: unpickling it (our own, harmless one) does create the marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


# --- TOML configs --------------------------------------------------------------------------

TRAIN_TOML = {
    "unknown-field": ("epoch = 3", r"unknown field config\.epoch; did you mean 'epochs'\?"),
    "string-for-int": ('batch_size = "64"', r"config\.batch_size must be an integer, got '64'"),
    "bool-for-number": ("epochs = true", r"config\.epochs must be a number, got True"),
    "infinite": ("epochs = inf", r"config\.epochs must be a finite number, got inf"),
    "number-for-string": ("model = 3", r"config\.model must be a string, got 3"),
    "string-for-table": ('optim = "sgd"', r"config\.optim must be a table of OptimConfig fields"),
    "unknown-choice": ('[optim]\nname = "adam"', r"config\.optim\.name must be one of 'rmsprop'"),
    "short-list": ("[noise]\ncrop_scale = [0.5]", r"config\.noise\.crop_scale must be a list of 2"),
    "fraction-for-int": ("unlabeled_ratio = 0.5", r"config\.unlabeled_ratio must be an integer"),
    "zero-size": ("image_size = 0", r"TrainConfig\.image_size must be positive, got 0"),
    "negative-size": ("batch_size = -4", r"TrainConfig\.batch_size must be positive, got -4"),
    "negative-workers": ("workers = -1", r"workers must be >= 0 or absent, got -1"),
    "smoothing-over-1": ("label_smoothing = 1.5", r"label_smoothing must be in \[0, 1\)"),
    "not-toml": ("epochs = [", r"is not valid TOML"),
    "unknown-device": ('device = "gpu"', r"device"),
}
XFAIL_TOML: dict[str, str] = {}
RUN_TOML = {
    "threshold-over-1": ("threshold = 1.5", r"threshold must be in \[0, 1\)"),
    "threshold-negative": ("threshold = -0.1", r"threshold must be in \[0, 1\)"),
    "threshold-a-word": ('threshold = "high"', r"config\.threshold must be a number, got 'high'"),
    "negative-iterations": ("iterations = -1", r"iterations must be >= 0"),
    "zero-per-class": ("per_class = 0", r"per_class must be positive"),
    "zero-ratio": ("ratios = [3, 0]", r"ratios must be positive"),
    "word-in-ratios": ('ratios = [3, "x"]', r"config\.ratios\[1\] must be an integer"),
    "job-zero-batch": ("[teacher]\nbatch_size = 0", r"TrainConfig\.batch_size must be positive"),
    "misspelt-table": (
        "[techer]\nepochs = 1.0",
        r"unknown field config\.techer; did you mean 'teacher'",
    ),
    "unknown-data-key": ('[data]\nlabelled = "x"', r"unknown field config\.data\.labelled"),
}


def _case(name: str, xfails: dict[str, str]) -> object:
    if name in xfails:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=xfails[name]))
    return name


@pytest.mark.parametrize("case", [_case(c, XFAIL_TOML) for c in TRAIN_TOML])
def test_bad_train_config_files_are_one_error_line(
    tmp_path: Path, digits: DigitsSplits, case: str
) -> None:
    text, message = TRAIN_TOML[case]
    config = tmp_path / "job.toml"
    config.write_text(text + "\n")
    args = ["train", "--labeled", digits.labeled, "--out", tmp_path / "job", "--config", config]
    line = one_line_error(*ns(*args, *settings(but=text)))  # the file's field, not --set's
    assert re.search(message, line), line
    assert not (tmp_path / "job" / "checkpoint").exists()


@pytest.mark.parametrize("case", list(RUN_TOML))
def test_bad_run_config_files_are_one_error_line(tmp_path: Path, case: str) -> None:
    text, message = RUN_TOML[case]
    config = tmp_path / "run.toml"
    config.write_text(f'preset = "digits-demo"\n{text}\n')
    line = one_line_error(*ns("run", config, "--out", tmp_path / "run"))
    assert re.search(message, line), line
    assert not (tmp_path / "run").exists()


def test_a_bad_override_is_one_error_line(tmp_path: Path, digits: DigitsSplits) -> None:
    """`--set` goes through the same checks as a file."""
    args = ["train", "--labeled", digits.labeled, "--out", tmp_path / "job"]
    line = one_line_error(*ns(*args, "--set", "batch_size=big"))
    assert "config.batch_size must be an integer, got 'big'" in line
