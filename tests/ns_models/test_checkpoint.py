"""Checkpoint round trip, class-count checks and atomic writes; the timm Hub layout timm loads,
the ns-checkpoint/1 folders written before it, and timm folders imported as checkpoints."""

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ns_models import (
    CheckpointConfig,
    ModelError,
    NoiseConfig,
    build_model,
    load_checkpoint,
    open_checkpoint,
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
    assert sorted(p.name for p in directory.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    loaded, config = load_checkpoint(directory)
    assert config == make_config()
    assert config.ns_version and json.loads((directory / "config.json").read_text())["ns"]["ema"]
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
    saved = load_file(directory / "model.safetensors")
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    assert all(torch.equal(v, saved[k]) for k, v in body.items())


def test_model_and_config_must_agree(tmp_path: Path, trained: nn.Module) -> None:
    with pytest.raises(ModelError, match="model has 3 classes"):
        save_checkpoint(tmp_path / "c", trained, make_config(num_classes=4, class_names=[]))
    with pytest.raises(ModelError, match=r"model is tinynet_e, config for .* says efficientnet_b0"):
        save_checkpoint(tmp_path / "c", trained, make_config(model_name="efficientnet_b0"))
    assert not (tmp_path / "c").exists()


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
    del data["ns"]["noise"]
    config.write_text(json.dumps(data))
    with pytest.raises(
        ModelError, match=r"config\.json lacks or misspells a field \(KeyError\('noise'\)"
    ):
        load_checkpoint(directory)
    config.write_text(json.dumps({**data, "ns": {"format": "ns-checkpoint/3"}}))
    with pytest.raises(ModelError, match=r"format 'ns-checkpoint/3', this ns reads .*: upgrade ns"):
        load_checkpoint(directory)
    config.write_text(json.dumps({"model": "tinynet_e"}))
    with pytest.raises(ModelError, match=r"neither an ns checkpoint nor a timm Hub config"):
        load_checkpoint(directory)
    config.write_text("{not json")
    with pytest.raises(ModelError, match=r"config\.json is not valid JSON"):
        load_checkpoint(directory)


def test_timm_loads_the_checkpoint_with_our_preprocessing(
    tmp_path: Path, trained: nn.Module
) -> None:
    preprocessing = {"crop_pct": 0.9, "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}
    config = make_config(interpolation="bicubic", **preprocessing)
    directory = save_checkpoint(tmp_path / "ckpt", trained, config)
    model = timm.create_model(f"local-dir:{directory}", pretrained=True).eval()
    assert model.num_classes == 3 and model.pretrained_cfg["label_names"] == ["cat", "dog", "fox"]
    own, back = trained.state_dict(), model.state_dict()
    assert own.keys() == back.keys() and all(torch.equal(own[k], back[k]) for k in own)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), model(x))
    expected = {"input_size": (3, 64, 64), "interpolation": "bicubic", **preprocessing}
    cfg = model.pretrained_cfg
    assert {k: tuple(cfg[k]) if k in ("mean", "std") else cfg[k] for k in expected} == expected
    data = timm.data.resolve_data_config({}, model=model)
    assert {k: tuple(v) if k in ("mean", "std") else v for k, v in data.items()} == {
        **expected,
        "crop_mode": "center",
    }


def test_config_json_is_timms_layout_with_ns_metadata_beside(
    tmp_path: Path, trained: nn.Module
) -> None:
    directory = save_checkpoint(tmp_path / "ckpt", trained, make_config())
    data = json.loads((directory / "config.json").read_text())
    for key in ("architecture", "num_classes", "num_features", "label_names", "pretrained_cfg"):
        assert key in data
    assert data["architecture"] == NAME and data["num_features"] == trained.num_features
    assert data["pretrained_cfg"]["tag"] is None  # not timm's in1k weights
    assert data["ns"] == {
        "format": "ns-checkpoint/2",
        "noise": {"drop_rate": 0.3, "drop_path_rate": 0.1},
        "ema": True,
        "extra": {"iteration": 2, "top1": 0.5, "tags": ["a"]},
        "ns_version": read_config(directory).ns_version,
    }
    assert open_checkpoint(directory).timm_config == {k: v for k, v in data.items() if k != "ns"}


def write_legacy_checkpoint(directory: Path, model: nn.Module) -> Path:
    """A folder as ns-models 0.1 wrote it (format ns-checkpoint/1), byte for byte the same keys."""
    directory.mkdir()
    save_file(model.state_dict(), directory / "weights.safetensors", metadata={"format": "pt"})
    config = {
        "format": "ns-checkpoint/1",
        "model_name": NAME,
        "num_classes": 3,
        "class_names": ["cat", "dog", "fox"],
        "image_size": 64,
        "noise": {"drop_rate": 0.3, "drop_path_rate": 0.1},
        "ema": True,
        "in_chans": 3,
        "extra": {"steps": 5, "eval": {"top1": 0.5}},
        "ns_version": "0.1.0",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def test_legacy_checkpoints_still_load(tmp_path: Path, trained: nn.Module) -> None:
    directory = write_legacy_checkpoint(tmp_path / "old", trained)
    folder = open_checkpoint(directory)
    assert folder.layout == "ns-checkpoint/1" and folder.timm_config is None
    assert folder.files == (directory / "weights.safetensors", directory / "config.json")
    model, config = load_checkpoint(directory)
    assert config == make_config(extra={"steps": 5, "eval": {"top1": 0.5}}, ns_version="0.1.0")
    assert (config.crop_pct, config.interpolation) == (0.875, "bilinear")  # ns's eval view then
    own, back = trained.state_dict(), model.state_dict()
    assert all(torch.equal(own[k], back[k]) for k in own)


def test_overwrite_rewrites_the_layout_and_keeps_other_files(
    tmp_path: Path, trained: nn.Module
) -> None:
    directory = write_legacy_checkpoint(tmp_path / "ckpt", trained)
    (directory / "notes.txt").write_text("keep me")
    (directory / "eval").mkdir()
    (directory / "eval" / "eval.json").write_text("{}")
    model, config = load_checkpoint(directory)
    save_checkpoint(directory, model, config, overwrite=True)
    assert sorted(p.name for p in directory.iterdir()) == [
        "README.md",
        "config.json",
        "eval",
        "model.safetensors",
        "notes.txt",
    ]
    assert (directory / "notes.txt").read_text() == "keep me"
    assert (directory / "eval" / "eval.json").read_text() == "{}"
    assert open_checkpoint(directory).layout == "ns-checkpoint/2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize("safe", [True, False], ids=["model.safetensors", "pytorch_model.bin"])
def test_a_timm_hub_folder_imports_as_a_checkpoint(tmp_path: Path, safe: bool) -> None:
    """ImageNet-style weights fetched elsewhere start a teacher: `--init local-dir:PATH`."""
    torch.manual_seed(0)
    source = random_head(timm.create_model(NAME, num_classes=5)).eval()
    timm.models.save_for_hf(source, tmp_path / "hub", safe_serialization=safe)
    weights = "model.safetensors" if safe else "pytorch_model.bin"
    assert sorted(p.name for p in (tmp_path / "hub").iterdir()) == ["config.json", weights]
    for name in (tmp_path / "hub", f"local-dir:{tmp_path / 'hub'}"):
        folder = open_checkpoint(name)
        assert (folder.layout, folder.weights.name) == ("timm", weights)
        model, config = load_checkpoint(Path(name), num_classes=5)
        assert (config.model_name, config.num_classes, config.ns_version) == (NAME, 5, None)
        assert config.image_size == source.pretrained_cfg["input_size"][-1]
        assert config.interpolation == source.pretrained_cfg["interpolation"]
        own, back = source.state_dict(), model.state_dict()
        assert all(torch.equal(own[k], back[k]) for k in own)
    body, _ = load_checkpoint(tmp_path / "hub", num_classes=10, reinit_classifier=True)
    assert torch.equal(body.conv_stem.weight, source.conv_stem.weight)


def test_a_pickled_hub_bin_is_refused_without_running_it(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (tmp_path / "ran",))

    timm.models.save_for_hf(timm.create_model(NAME, num_classes=5), tmp_path / "hub")
    torch.save({"conv_stem.weight": Payload()}, tmp_path / "hub" / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin is not a plain tensor state dict"):
        load_checkpoint(tmp_path / "hub")
    assert not (tmp_path / "ran").exists()


def test_hub_ids_and_weightless_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError, match=r"ns does not download; .*hf download timm/x .*local-dir:DIR"
    ):
        load_checkpoint("hf-hub:timm/x")
    timm.models.save_for_hf(timm.create_model(NAME, num_classes=5), tmp_path / "hub")
    (tmp_path / "hub" / "pytorch_model.bin").unlink()
    with pytest.raises(ModelError, match=r"no model\.safetensors or pytorch_model\.bin"):
        read_config(tmp_path / "hub")
