"""Checkpoint round trip, class-count checks and atomic writes."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ns_models import (
    CheckpointConfig,
    ModelError,
    NoiseConfig,
    build_model,
    load_checkpoint,
    read_config,
    save_checkpoint,
)

from .conftest import random_head

NAME = "tinynet_e"


def make_config(**changes: object) -> CheckpointConfig:
    fields = {
        "model_name": NAME,
        "num_classes": 3,
        "class_names": ["cat", "dog", "fox"],
        "image_size": 64,
        "noise": NoiseConfig(0.3, 0.1),
        "ema": True,
        "extra": {"iteration": 2, "top1": 0.5, "tags": ["a"]},
    }
    return CheckpointConfig(**{**fields, **changes})


@pytest.fixture
def trained() -> nn.Module:
    torch.manual_seed(0)
    model = random_head(build_model(NAME, 3, noise=NoiseConfig(0.3, 0.1)))
    with torch.no_grad():  # move BN statistics off their defaults
        model(torch.randn(4, 3, 64, 64))
    return model


def test_round_trip_is_bit_exact(tmp_path: Path, trained: nn.Module) -> None:
    directory = save_checkpoint(tmp_path / "ckpt", trained, make_config())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary left behind
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "weights.safetensors"]
    loaded, config = load_checkpoint(directory)
    assert config == make_config()
    assert config.ns_version and json.loads((directory / "config.json").read_text())["ema"]
    own, back = trained.state_dict(), loaded.state_dict()
    assert own.keys() == back.keys()
    assert all(torch.equal(own[k], back[k]) for k in own)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), loaded(x))
    assert not loaded.training and loaded.drop_rate == 0.3


def test_save_refuses_existing_unless_overwrite(tmp_path: Path, trained: nn.Module) -> None:
    directory = save_checkpoint(tmp_path / "ckpt", trained, make_config())
    with pytest.raises(ModelError, match="exists: pick a new directory or overwrite=True"):
        save_checkpoint(directory, trained, make_config())
    save_checkpoint(directory, trained, make_config(ema=False), overwrite=True)
    assert read_config(directory).ema is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_class_count_mismatch_is_refused(tmp_path: Path, trained: nn.Module) -> None:
    directory = save_checkpoint(tmp_path / "ckpt", trained, make_config())
    with pytest.raises(ModelError, match="has 3 classes, 5 were asked: pass reinit_classifier"):
        load_checkpoint(directory, num_classes=5)


def test_reinit_classifier_keeps_the_body(tmp_path: Path, trained: nn.Module) -> None:
    directory = save_checkpoint(tmp_path / "ckpt", trained, make_config())
    model, config = load_checkpoint(directory, num_classes=5, reinit_classifier=True)
    assert config.num_classes == 5 and config.class_names == []
    assert model.get_classifier().out_features == 5
    saved = load_file(directory / "weights.safetensors")
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    assert all(torch.equal(v, saved[k]) for k, v in body.items())


def test_model_and_config_must_agree(tmp_path: Path, trained: nn.Module) -> None:
    with pytest.raises(ModelError, match="model has 3 classes"):
        save_checkpoint(tmp_path / "c", trained, make_config(num_classes=4, class_names=[]))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"class_names": ["a"]}, "class_names has 1 entries for num_classes=3"),
        ({"image_size": 0}, "image_size=0"),
        ({"extra": {"f": object()}}, "extra is not JSON-able"),
        ({"extra": {"nan": float("nan")}}, "extra is not JSON-able"),
        ({"model_name": ""}, "model_name is empty"),
    ],
)
def test_bad_config(changes: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        make_config(**changes)


def test_bad_checkpoint_directories(tmp_path: Path, trained: nn.Module) -> None:
    with pytest.raises(ModelError, match=r"config\.json not found"):
        load_checkpoint(tmp_path / "missing")
    directory = save_checkpoint(tmp_path / "ckpt", trained, make_config())
    config = directory / "config.json"
    data = json.loads(config.read_text())
    del data["image_size"]
    config.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"config\.json lacks or misspells a field"):
        load_checkpoint(directory)
    config.write_text("{not json")
    with pytest.raises(ModelError, match=r"config\.json is not valid JSON"):
        load_checkpoint(directory)
