"""Importing timm-format weights from local files, never unpickling code."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ns_models import ModelError, build_model

NAME = "tinynet_e"


class Payload:
    """Unpickling this touches `marker`: stands in for code hidden in a .pth file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    """A 1000-class timm state dict, like a user's copy of a pretrained model."""
    torch.manual_seed(0)
    return build_model(NAME, 1000).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".bin"])
def test_init_from_local_file(tmp_path: Path, source: dict, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(source, path)
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in source.items()}}, path)
    model = build_model(NAME, 1000, init_from=path)
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())


def test_init_from_other_task_needs_reinit(tmp_path: Path, source: dict) -> None:
    path = tmp_path / "weights.safetensors"
    save_file(source, path)
    with pytest.raises(ModelError, match="1000-class classifier, the model has 10"):
        build_model(NAME, 10, init_from=path)
    model = build_model(NAME, 10, init_from=path, reinit_classifier=True)
    assert torch.equal(model.conv_stem.weight, source["conv_stem.weight"])
    head = model.get_classifier()
    assert head.out_features == 10 and not head.weight.any() and not head.bias.any()


def test_fresh_classifier_starts_at_zero() -> None:
    """Uniform predictions at first: the first loss is ln(classes), not timm's ~10 for 10 classes."""
    torch.manual_seed(0)
    model = build_model(NAME, 10).eval()
    with torch.no_grad():
        features = model.forward_head(
            model.forward_features(torch.randn(2, 3, 64, 64)), pre_logits=True
        )
        logits = model(torch.randn(2, 3, 64, 64))
    assert features.abs().sum() > 0 and torch.equal(logits, torch.zeros(2, 10))


def test_pickle_payload_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv_stem.weight": torch.zeros(1), "payload": Payload(marker)}, path)
    with pytest.raises(ModelError, match=r"evil\.pth is not a plain tensor state dict") as err:
        build_model(NAME, 10, init_from=path)
    assert not marker.exists()
    assert "Unsupported global" in str(err.value) and "\n" not in str(err.value)
    # The payload is live: unpickling it (our own, harmless) does create the marker.
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    ("filename", "content", "match"),
    [
        ("weights.npz", b"", "unknown suffix"),
        ("weights.safetensors", b"garbage", "is not valid safetensors"),
        ("weights.pth", b"garbage", "not a plain tensor state dict"),
    ],
)
def test_bad_weight_files(tmp_path: Path, filename: str, content: bytes, match: str) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        build_model(NAME, 10, init_from=path)


def test_missing_and_foreign_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        build_model(NAME, 10, init_from=tmp_path / "nope.safetensors")
    path = tmp_path / "resnet.safetensors"
    save_file(build_model("resnet18", 10).state_dict(), path)
    with pytest.raises(ModelError, match="does not fit this architecture"):
        build_model(NAME, 10, init_from=path)


def test_precision_may_change_but_not_the_kind_of_dtype(tmp_path: Path, source: dict) -> None:
    """float16/bfloat16 weights and int32 counters load (cast); an int or bool weight is refused."""
    path = tmp_path / "weights.safetensors"
    half = {k: v.to(torch.bfloat16 if "bn" in k else torch.float16) for k, v in source.items()}
    half |= {k: v.to(torch.int32) for k, v in source.items() if "num_batches_tracked" in k}
    save_file(half, path)
    model = build_model(NAME, 1000, init_from=path)
    loaded = model.state_dict()
    assert all(loaded[k].dtype == v.dtype for k, v in source.items())
    assert torch.equal(loaded["conv_stem.weight"], half["conv_stem.weight"].float())
    save_file(source | {"bn1.bias": source["bn1.bias"].to(torch.int32)}, path)
    with pytest.raises(ModelError, match=r"bn1\.bias is torch\.int32, the model expects torch\.f"):
        build_model(NAME, 1000, init_from=path)
