"""Exports checked by running them: ONNX with onnxruntime, TorchScript with torch.jit.load, the
timm folder with timm.create_model; each carries the checkpoint's preprocessing."""

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from ns_models import (
    CheckpointConfig,
    ModelError,
    NoiseConfig,
    build_model,
    export_checkpoint,
    export_onnx,
    save_checkpoint,
)

from .conftest import random_head

NAME = "tinynet_e"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    model = random_head(build_model(NAME, 3, noise=NoiseConfig(0.3, 0.1))).eval()
    config = CheckpointConfig(
        model_name=NAME,
        num_classes=3,
        class_names=["cat", "dog", "fox"],
        image_size=64,
        noise=NoiseConfig(0.3, 0.1),
        crop_pct=0.9,
    )
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt", model, config), model


PREPROCESSING = {
    "architecture": NAME,
    "num_classes": 3,
    "label_names": ["cat", "dog", "fox"],
    "input_size": [3, 64, 64],
    "crop_pct": 0.9,
    "crop_mode": "center",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "interpolation": "bilinear",
}


def test_onnx_matches_pytorch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = random_head(build_model(NAME, 10)).train()
    path = export_onnx(model, tmp_path / "model.onnx", 64, metadata={"crop_pct": "0.9"})
    assert model.training  # the caller's mode is restored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == {"crop_pct": "0.9"}
    images = torch.randn(3, 3, 64, 64)  # another batch size than the export's example
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    with torch.no_grad():
        expected = model.eval()(images).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_pytorch_and_states_its_preprocessing(
    tmp_path: Path, checkpoint: tuple[Path, nn.Module]
) -> None:
    directory, model = checkpoint
    files = export_checkpoint(directory, tmp_path / "model.pt", "torchscript")
    assert files == [tmp_path / "model.pt", tmp_path / "model.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]
    sidecar = json.loads((tmp_path / "model.json").read_text())
    assert {k: v for k, v in sidecar.items() if k != "input"} == PREPROCESSING
    scripted = torch.jit.load(str(tmp_path / "model.pt"))
    images = torch.randn(3, 3, 64, 64)  # another batch size than the trace's example
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), model(images), rtol=1e-5, atol=1e-5)


def test_timm_export_is_a_clean_hub_folder(
    tmp_path: Path, checkpoint: tuple[Path, nn.Module]
) -> None:
    directory, model = checkpoint
    (directory / "notes.txt").write_text("not exported")
    out = tmp_path / "hub"
    assert [p.name for p in export_checkpoint(directory, out, "timm")] == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert timm.data.resolve_data_config({}, model=loaded)["crop_pct"] == 0.9
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_export_refuses_bad_arguments(tmp_path: Path, checkpoint: tuple[Path, nn.Module]) -> None:
    directory, model = checkpoint
    with pytest.raises(ModelError, match=r"should end in \.onnx"):
        export_onnx(model, tmp_path / "model.bin", 64)
    with pytest.raises(ModelError, match="image_size=0"):
        export_onnx(model, tmp_path / "model.onnx", 0)
    with pytest.raises(ModelError, match=r"should end in \.pt"):
        export_checkpoint(directory, tmp_path / "model.pth", "torchscript")
    with pytest.raises(ModelError, match="choose one of onnx, timm, torchscript"):
        export_checkpoint(directory, tmp_path / "x", "tflite")  # type: ignore[arg-type]
    (tmp_path / "taken.pt").write_bytes(b"")
    with pytest.raises(
        ModelError, match=r"taken\.pt exists: pick another path or pass --overwrite"
    ):
        export_checkpoint(directory, tmp_path / "taken.pt", "torchscript")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.pt"]
