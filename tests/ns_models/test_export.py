"""ONNX export checked by running it with onnxruntime against PyTorch."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ns_models import ModelError, build_model, export_onnx

from .conftest import random_head

ort = pytest.importorskip("onnxruntime")


def test_onnx_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = random_head(build_model("tinynet_e", 10)).train()
    path = export_onnx(model, tmp_path / "model.onnx", 64)
    assert model.training  # the caller's mode is restored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 64, 64)  # another batch size than the export's example
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    with torch.no_grad():
        expected = model.eval()(images).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_export_refuses_bad_arguments(tmp_path: Path) -> None:
    model = build_model("tinynet_e", 10)
    with pytest.raises(ModelError, match=r"should end in \.onnx"):
        export_onnx(model, tmp_path / "model.bin", 64)
    with pytest.raises(ModelError, match="image_size=0"):
        export_onnx(model, tmp_path / "model.onnx", 0)
