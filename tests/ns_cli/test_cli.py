"""The `ns` command line: help, version, one-line errors with exit code 1 for bad input, and
`ns info` / `ns export` on checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ns_cli.main
from ns_cli.console import PIPED_WIDTH, report_console
from ns_cli.main import app
from ns_models import CheckpointConfig, NoiseConfig, build_model, save_checkpoint

runner = CliRunner()


def ns(*args: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point, as a user would."""
    env = {**os.environ, "NS_DEBUG": "1" if debug else "0"}
    return subprocess.run(
        [sys.executable, "-m", "ns_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "shard",
        "info",
        "train",
        "label",
        "select",
        "eval",
        "export",
        "corrupt",
        "run",
        "status",
        "demo",
        "bench",
    ):
        assert command in result.output


def test_cli_start_imports_no_torch_timm_or_dali() -> None:
    """`ns --help`, `ns info SHARDS` and `ns status RUN` start without the heavy libraries."""
    heavy = ("torch", "timm", "nvidia.dali", "numba", "matplotlib")
    probe = f"import sys, ns_cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("preset", "expected"), [(None, "1000"), ("5", "5")])
def test_openmp_threads_spin_briefly_unless_the_user_says(
    preset: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    probe = "import os, ns_cli.main; print(os.environ['GOMP_SPINCOUNT'])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stdout.strip() == expected, result.stderr


@pytest.mark.parametrize("command", ["train", "label", "eval", "demo", "info", "export"])
def test_each_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


@pytest.fixture
def sets(digits):
    return digits


def invoke(*args: str):
    """`ns ARGS` in this process (the app and its error group as the console entry runs them)."""
    return runner.invoke(app, list(args), env={"NS_DEBUG": "0"})


def test_missing_path_is_one_line_exit_1(tmp_path: Path) -> None:
    result = invoke("train", "--labeled", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_is_one_line_exit_1(tmp_path: Path, sets) -> None:
    args = [
        "--labeled",
        str(sets.labeled),
        "--out",
        str(tmp_path),
        "--set",
        "model=efficientnet_b9",
    ]
    result = invoke("train", *args)
    assert result.exit_code == 1 and "efficientnet_b9" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_unlabeled_set_as_labeled_data_is_one_line_exit_1(tmp_path: Path, sets) -> None:
    result = invoke("train", "--labeled", str(sets.unlabeled), "--out", str(tmp_path))
    assert result.exit_code == 1 and "has no labels" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """The console entry point itself (a process): NS_DEBUG=1 lets the traceback through."""
    result = ns("eval", "--checkpoint", str(tmp_path / "nope"), "--data", str(tmp_path), debug=True)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_report_tables_are_not_squeezed_when_piped() -> None:
    """Piped or logged output gets 140 columns, not rich's 80 (the report table needs ~130)."""
    assert report_console().width == PIPED_WIDTH


def test_version_is_the_packages_one() -> None:
    versions = {version(name) for name in ("ns-cli", "ns-train", "ns-data", "ns-models")}
    assert len(versions) == 1  # released together
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"ns {versions.pop()}\n"


def test_version_names_a_package_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ns_cli.main, "version", lambda name: "0.0.1" if name == "ns-data" else "1.0.0"
    )
    result = runner.invoke(app, ["--version"])
    assert result.output == "ns 1.0.0 (but ns-data 0.0.1: reinstall ns)\n"


def test_python_m_ns_cli_and_shell_completion() -> None:
    result = ns("--help")
    assert result.returncode == 0, result.stderr
    assert "python -m ns_cli" in result.stdout and "export" in result.stdout
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    assert ns("--version").stdout == f"ns {version('ns-cli')}\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("tinynet_e", 2, noise=NoiseConfig(0.3, 0.1)).eval()
    with torch.no_grad():
        model.get_classifier().weight.normal_(std=0.05)
    config = CheckpointConfig(
        model_name="tinynet_e",
        num_classes=2,
        class_names=["cat", "dog"],
        image_size=64,
        noise=NoiseConfig(0.3, 0.1),
        ema=True,
        extra={"steps": 7, "eval": {"top1": 0.75}},
    )
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt", model, config), model


def test_info_shows_the_ns_and_timm_views_of_a_checkpoint(checkpoint: tuple[Path, object]) -> None:
    path, _ = checkpoint
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{path}: checkpoint, layout ns-checkpoint/2, written by ns ")
    assert lines[1] == (
        "ns: tinynet_e, 2 classes, 64 px, EMA weights: True; noise: dropout 0.3, "
        "drop_path_rate 0.1; 7 steps; top-1 75.00%"
    )
    assert lines[2] == "timm: architecture tinynet_e, num_classes 2, label_names cat, dog"
    assert lines[3].startswith("timm pretrained_cfg: input_size [3, 64, 64], crop_pct 0.875, ")
    assert "interpolation bilinear" in lines[3]
    assert lines[4] == f'load in timm: timm.create_model("local-dir:{path}", pretrained=True)'


def test_info_json_for_scripts(checkpoint: tuple[Path, object], tmp_path: Path) -> None:
    path, _ = checkpoint
    result = runner.invoke(app, ["info", f"local-dir:{path}", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["kind"], data["layout"], data["weights"]) == (
        "checkpoint",
        "ns-checkpoint/2",
        "model.safetensors",
    )
    assert data["ns"]["ema"] is True and data["ns"]["extra"]["steps"] == 7
    assert data["timm"]["pretrained_cfg"]["input_size"] == [3, 64, 64]
    assert "ns" not in data["timm"]
    card = json.loads(runner.invoke(app, ["info", "--model", "efficientnet_b0", "--json"]).output)
    assert card["kind"] == "model-card" and card["noise"] == {
        "drop_rate": 0.2,
        "drop_path_rate": 0.2,
    }


def test_info_on_an_ns_checkpoint_1_folder(checkpoint: tuple[Path, object], tmp_path: Path) -> None:
    path, _ = checkpoint
    old = tmp_path / "old"
    old.mkdir()
    (old / "weights.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    config = {
        "format": "ns-checkpoint/1",
        "model_name": "tinynet_e",
        "num_classes": 2,
        "class_names": ["cat", "dog"],
        "image_size": 64,
        "noise": {"drop_rate": 0.3, "drop_path_rate": 0.1},
        "ema": False,
        "in_chans": 3,
        "extra": {},
        "ns_version": "0.1.0",
    }
    (old / "config.json").write_text(json.dumps(config))
    lines = runner.invoke(app, ["info", str(old)]).output.splitlines()
    assert (
        lines[0]
        == f"{old}: checkpoint, layout ns-checkpoint/1, written by ns 0.1.0, weights weights.safetensors"
    )
    assert lines[2].startswith("timm: none (ns-checkpoint/1 predates the timm layout; `ns export")
    assert json.loads(runner.invoke(app, ["info", str(old), "--json"]).output)["timm"] is None


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "timm"])
def test_export_each_format(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path, fmt: str
) -> None:
    path, model = checkpoint
    out = tmp_path / {"onnx": "m.onnx", "torchscript": "m.pt", "timm": "hub"}[fmt]
    result = runner.invoke(app, ["export", str(path), "--format", fmt, str(out)])
    assert result.exit_code == 0, result.output
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = model(images).numpy()
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        assert result.output == f"wrote {out}\n"
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
        assert meta["label_names"] == ["cat", "dog"] and meta["input_size"] == [3, 64, 64]
        assert (meta["mean"], meta["crop_pct"], meta["interpolation"]) == (
            [0.485, 0.456, 0.406],
            0.875,
            "bilinear",
        )
        (logits,) = session.run(["logits"], {"images": images.numpy()})
    elif fmt == "torchscript":
        assert result.output == f"wrote {out}\nwrote {out.with_suffix('.json')}\n"
        assert json.loads(out.with_suffix(".json").read_text())["std"] == [0.229, 0.224, 0.225]
        with torch.no_grad():
            logits = torch.jit.load(str(out))(images).numpy()
    else:
        import timm

        assert sorted(p.name for p in out.iterdir()) == [
            "README.md",
            "config.json",
            "model.safetensors",
        ]
        with torch.no_grad():
            logits = timm.create_model(f"local-dir:{out}", pretrained=True).eval()(images).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    again = runner.invoke(app, ["export", str(path), "--format", fmt, str(out)])
    assert again.exit_code == 1 and "exists: pick another path or pass --overwrite" in again.output


@pytest.mark.parametrize(
    ("command", "shown", "hidden"),
    [
        ("label", ["--checkpoint", "--unlabeled", "--json", "--quiet"], ["--teacher", "--data"]),
        ("select", ["--pseudo-labels", "--unlabeled", "--json"], ["--labels "]),
        ("train", ["CONFIG", "--unlabeled", "--pseudo-labels", "--json"], ["--config"]),
        ("eval", ["--checkpoint", "--json", "--quiet"], []),
        ("shard", ["--quiet", "--overwrite"], []),
        ("bench", ["--data", "--quiet"], []),
    ],
)
def test_one_option_name_per_thing_old_spellings_hidden(
    command: str, shown: list[str], hidden: list[str]
) -> None:
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in shown:
        assert name in result.output, name
    for name in hidden:
        assert name not in result.output, name


def test_an_option_and_its_old_spelling_together_or_neither_are_usage_errors(
    tmp_path: Path,
) -> None:
    both = ["label", "--out", str(tmp_path), "--unlabeled", "u", "--data", "d", "--checkpoint", "c"]
    result = runner.invoke(app, both)
    assert result.exit_code == 2 and "--data" in result.output
    result = runner.invoke(app, ["label", "--out", str(tmp_path), "--teacher", "c"])
    assert result.exit_code == 2 and "--unlabeled" in result.output


def test_errors_become_one_line_in_the_app_itself(tmp_path: Path) -> None:
    """The app's group maps domain errors for every command (CliRunner sees it too)."""
    result = runner.invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 1 and "not a run directory" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
