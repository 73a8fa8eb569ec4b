"""`ns run` straight from image folders: each folder sharded once under RUN/shards, then the loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from ns_cli.main import app

pytestmark = pytest.mark.slow
runner = CliRunner()

TINY = """
preset = "custom-folder"
iterations = 1
students = ["efficientnet_b0"]
filter_balance = false
label_batch_size = 256
[teacher]
{job}
epochs = 2.0
[student]
{job}
epochs = 0.1
"""
JOB = (
    'model = "efficientnet_b0"\nimage_size = 32\nbatch_size = 16\nbackend = "torch"\n'
    'workers = 0\ndevice = "cpu"\nbf16 = false\nema_decay = 0.9\n'
)


def write_folders(root: Path) -> dict[str, Path]:
    """Digits as PNG files: 5 labeled and 5 eval images per class in class folders, 300
    unlabeled ones in nested folders that are not classes."""
    digits = load_digits()
    pixels = (digits.images * 255 / 16).astype(np.uint8)
    folders = {name: root / name for name in ("train", "val", "raw")}
    seen = dict.fromkeys(range(10), 0)
    for index, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        count = seen[int(label)]
        seen[int(label)] += 1
        if count < 5:
            path = folders["train"] / f"class_{label}" / f"{index}.png"
        elif count < 10:
            path = folders["val"] / f"class_{label}" / f"{index}.png"
        elif index < 600:
            path = folders["raw"] / f"batch{index % 3}" / f"{index}.png"
        else:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((32, 32)).convert("RGB").save(path)
    return folders


def test_a_run_from_folders_shards_them_once_and_reports(tmp_path: Path) -> None:
    folders = write_folders(tmp_path / "photos")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.format(job=JOB))
    out = tmp_path / "run"
    args = [
        "run", str(config), "--out", str(out), "--quiet",
        "--labeled", str(folders["train"]), "--unlabeled", str(folders["raw"]),
        "--eval", str(folders["val"]),
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for role, folder in (("labeled", "train"), ("unlabeled", "raw"), ("eval", "val")):
        manifest = json.loads((out / "shards" / role / "manifest.json").read_text())
        assert manifest["num_samples"] == len(list(folders[folder].rglob("*.png")))
    labeled = json.loads((out / "shards/labeled/manifest.json").read_text())
    evaluated = json.loads((out / "shards/eval/manifest.json").read_text())
    assert labeled["classes"] == evaluated["classes"] == [f"class_{n}" for n in range(10)]
    assert (out / "report.md").exists()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == ["teacher", "label", "plan", "student", "iteration"]

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "labeled: " in again.output and "sharded before, reused" in again.output

    moved = tmp_path / "other-train"
    folders["train"].rename(moved)
    args[args.index(str(folders["train"]))] = str(moved)
    refused = runner.invoke(app, args)  # another config for this run directory
    assert refused.exit_code == 1 and "differs in data.labeled" in refused.output
    forced = runner.invoke(app, [*args, "--force"])  # adopted: but the shards are of another source
    assert forced.exit_code == 1
    assert "was sharded from" in forced.output and "delete" in forced.output


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "--labeled",
            str(tmp_path / "nope"),
            "--unlabeled",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1
    assert "data.labeled:" in result.output and "does not exist" in result.output
