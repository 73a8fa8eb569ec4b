"""Checkpoints: timm Hub folders (`model.safetensors` + `config.json` + `README.md`) that ns writes
atomically and reads back with its own metadata under the `ns` key of `config.json`.

`timm.create_model("local-dir:CKPT", pretrained=True)` loads one as it is. ns also reads the
folders it wrote before (`ns-checkpoint/1`: `weights.safetensors` + a flat `config.json`) and
plain timm Hub folders (e.g. ImageNet weights fetched elsewhere, to start a teacher from).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, Literal

import torch
from safetensors.torch import save_file
from timm.data import DEFAULT_CROP_PCT, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models._hub import load_model_config_from_path, save_config_for_hf
from torch import nn

from ns_models.atomic import atomic_path
from ns_models.build import build_model
from ns_models.card import checkpoint_readme
from ns_models.errors import ModelError
from ns_models.noise import ModelNoise, default_noise
from ns_models.speed import unwrap
from ns_models.weights import load_into, read_state_dict

WEIGHTS_FILE = "model.safetensors"
"""timm's Hub weights file: the model's state dict under timm's key names."""
PICKLE_WEIGHTS_FILE = "pytorch_model.bin"
"""timm's older Hub weights file, read only (`torch.load(weights_only=True)`)."""
CONFIG_FILE = "config.json"
README_FILE = "README.md"
FORMAT: Final = "ns-checkpoint/2"
"""The timm Hub layout, ns's metadata in `config.json["ns"]`."""
LEGACY_FORMAT: Final = "ns-checkpoint/1"
"""Before the timm layout: `weights.safetensors` + a flat `config.json`; still read."""
LEGACY_WEIGHTS_FILE = "weights.safetensors"
LOCAL_DIR = "local-dir:"
"""timm's prefix for a model folder on disk, accepted wherever ns takes a checkpoint."""

Layout = Literal["ns-checkpoint/2", "ns-checkpoint/1", "timm"]
_OWN_FILES = {WEIGHTS_FILE, PICKLE_WEIGHTS_FILE, CONFIG_FILE, README_FILE, LEGACY_WEIGHTS_FILE}

NS_CROP_PCT = 0.875
NS_MEAN = (0.485, 0.456, 0.406)
NS_STD = (0.229, 0.224, 0.225)
NS_INTERPOLATION = "bilinear"
"""ns's eval view (`ns_data.loading.views.View` defaults): resize the shorter side to size / 0.875
(bilinear, antialiased), center crop, normalize with ImageNet's mean and std."""


def _ns_version() -> str:
    try:
        return version("ns-models")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointConfig:
    """What a checkpoint records beside its weights (ns's view of `config.json`)."""

    model_name: str
    """timm model name the weights belong to; stored as timm's `architecture` (without a
    pretrained tag such as `.ra_in1k`: the weights are these, not timm's)."""
    num_classes: int
    """Size of the classifier."""
    class_names: list[str]
    """One name per class, or empty when the task's names are not known yet."""
    image_size: int
    """Resolution the model was trained at and should be evaluated at, in pixels."""
    noise: ModelNoise
    """Dropout and stochastic depth the model trains with."""
    ema: bool = False
    """True when the weights are an exponential moving average."""
    in_chans: int = 3
    """Input channels."""
    crop_pct: float = NS_CROP_PCT
    """Eval view: the center crop's share of the resized image's shorter side."""
    mean: tuple[float, ...] = NS_MEAN
    """Per-channel mean subtracted from images scaled to [0, 1]."""
    std: tuple[float, ...] = NS_STD
    """Per-channel standard deviation images are divided by."""
    interpolation: str = NS_INTERPOLATION
    """Resampling of the eval resize, as timm names it."""
    extra: dict[str, object] = field(default_factory=dict)
    """Caller's JSON-able metadata (e.g. steps, eval, teacher), stored as is."""
    ns_version: str | None = field(default_factory=_ns_version)
    """Version of ns-models that wrote the checkpoint; None for a folder ns did not write."""

    def __post_init__(self) -> None:
        if not isinstance(self.model_name, str) or not self.model_name:
            raise ModelError("CheckpointConfig.model_name is empty: pass a timm model name")
        for name in ("num_classes", "image_size", "in_chans"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelError(f"CheckpointConfig.{name}={value!r}: pass a positive integer")
        if not all(isinstance(c, str) for c in self.class_names) or len(self.class_names) not in (
            0,
            self.num_classes,
        ):
            raise ModelError(
                f"CheckpointConfig.class_names has {len(self.class_names)} entries for "
                f"num_classes={self.num_classes}: pass one string per class, or []"
            )
        if not isinstance(self.noise, ModelNoise):
            raise ModelError("CheckpointConfig.noise is not a ModelNoise: pass ModelNoise(...)")
        if not isinstance(self.crop_pct, int | float) or not 0 < self.crop_pct <= 1:
            raise ModelError(
                f"CheckpointConfig.crop_pct={self.crop_pct!r}: pass a number in (0, 1]"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple)
                or len(value) not in (1, self.in_chans)
                or not all(isinstance(v, int | float) for v in value)
            ):
                raise ModelError(
                    f"CheckpointConfig.{name}={value!r} for in_chans={self.in_chans}: pass a "
                    "tuple of one number per channel"
                )
        if not isinstance(self.interpolation, str) or not self.interpolation:
            raise ModelError("CheckpointConfig.interpolation is empty: pass e.g. 'bilinear'")
        if not isinstance(self.extra, dict):
            raise ModelError("CheckpointConfig.extra is not a dict: pass {'key': value, ...}")
        try:
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ModelError(
                f"CheckpointConfig.extra is not JSON-able ({err}): keep to str, numbers, "
                "bools, None, lists and dicts"
            ) from None

    def to_dict(self) -> dict[str, object]:
        """Every field, JSON-able."""
        return {**asdict(self), "noise": self.noise.to_dict()}

    def preprocessing(self) -> dict[str, object]:
        """What a user of the weights needs, in timm's `pretrained_cfg` terms, plus class names."""
        return {
            "architecture": self.model_name,
            "num_classes": self.num_classes,
            "label_names": list(self.class_names),
            "input_size": [self.in_chans, self.image_size, self.image_size],
            "crop_pct": self.crop_pct,
            "crop_mode": "center",
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    def _ns_metadata(self) -> dict[str, object]:
        """`config.json["ns"]`: what timm's keys do not already say."""
        return {
            "format": FORMAT,
            "noise": self.noise.to_dict(),
            "ema": self.ema,
            "extra": self.extra,
            "ns_version": self.ns_version,
        }


@dataclass(frozen=True, slots=True)
class CheckpointFolder:
    """A checkpoint folder as read: its layout, weights file, ns's view and timm's view."""

    path: Path
    layout: Layout
    weights: Path
    config: CheckpointConfig
    timm_config: dict[str, object] | None
    """`config.json` without the `ns` key, as timm reads it; None for `ns-checkpoint/1`."""

    @property
    def files(self) -> tuple[Path, Path]:
        """The weights and config files, the checkpoint's content."""
        return self.weights, self.path / CONFIG_FILE


def checkpoint_dir(source: Path | str) -> Path:
    """The folder of `source`: a path, or timm's `local-dir:PATH`; `hf-hub:` ids are refused."""
    text = os.fspath(source)
    if text.startswith(("hf-hub:", "hf_hub:")):
        raise ModelError(
            f"{text}: ns does not download; fetch the folder first (e.g. `hf download "
            f"{text.split(':', 1)[1]} --local-dir DIR`) and pass local-dir:DIR"
        )
    return Path(text.removeprefix(LOCAL_DIR))


def save_checkpoint(
    directory: Path, model: nn.Module, config: CheckpointConfig, *, overwrite: bool = False
) -> Path:
    """Write `model` as a timm Hub folder with `config` via a temporary directory + rename.

    `model.safetensors` holds `model`'s state dict (pass the weights ns evaluates with: the EMA
    model when there is one), `config.json` is timm's `save_for_hf` config with `config`'s
    preprocessing and class names plus `"ns"` metadata, `README.md` the model card.
    `config.ns_version` is stamped with the running version. With `overwrite`, the old directory
    is renamed aside, the new one (with the old one's other files) renamed in, the old deleted.
    """
    directory = Path(directory)
    model = unwrap(model)
    if directory.exists() and not overwrite:
        raise ModelError(f"checkpoint {directory} exists: pick a new directory or overwrite=True")
    architecture = getattr(model, "pretrained_cfg", {}).get("architecture")
    if architecture != config.model_name.split(".", 1)[0]:
        raise ModelError(
            f"model is {architecture or 'not a timm model'}, config for {directory} says "
            f"{config.model_name}: save the model CheckpointConfig.model_name names"
        )
    if getattr(model, "num_classes", config.num_classes) != config.num_classes:
        raise ModelError(
            f"model has {model.num_classes} classes, config for {directory} says "
            f"{config.num_classes}: make CheckpointConfig.num_classes match the model"
        )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = replace(config, ns_version=_ns_version())
    directory.parent.mkdir(parents=True, exist_ok=True)
    # killed writers' temporaries go first; a full disk names `directory`, never the temporary
    with atomic_path(directory, folder=True, sweep=f".{directory.name}.tmp-*") as tmp:
        save_file(state, tmp / WEIGHTS_FILE, metadata={"format": "pt"})
        _save_timm_config(model, tmp / CONFIG_FILE, config)
        (tmp / README_FILE).write_text(checkpoint_readme(config), encoding="utf-8")
        _keep_other_files(directory, tmp)
    return directory


def _save_timm_config(model: nn.Module, path: Path, config: CheckpointConfig) -> None:
    """timm's own Hub config writer (what `save_for_hf` calls), with ns's preprocessing."""
    preprocessing = config.preprocessing()
    save_config_for_hf(
        model,
        str(path),
        model_config={
            "label_names": preprocessing.pop("label_names"),
            # the default tag and license name timm's pretrained weights, not these
            "pretrained_cfg": {"tag": None, "license": None},
            "ns": config._ns_metadata(),
        },
        data_config={
            k: v for k, v in preprocessing.items() if k not in ("architecture", "num_classes")
        },
    )


def _keep_other_files(directory: Path, tmp: Path) -> None:
    """Link (or copy) the files of an old `directory` that are not the checkpoint's into `tmp`."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name not in _OWN_FILES:
            if entry.is_dir():
                shutil.copytree(entry, tmp / entry.name, copy_function=_link_or_copy)
            else:
                _link_or_copy(entry, tmp / entry.name)


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def open_checkpoint(source: Path | str) -> CheckpointFolder:
    """Read the checkpoint folder `source` (a path or `local-dir:PATH`), whichever layout."""
    directory = checkpoint_dir(source)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelError(
            f"{path} not found: pass a checkpoint folder (written by ns, or a timm Hub folder "
            "with config.json + model.safetensors)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path} is not valid JSON ({err}): re-save the checkpoint") from None
    if isinstance(data, dict) and data.get("format") == LEGACY_FORMAT:
        config = _legacy_config(data, path)
        return CheckpointFolder(
            directory, LEGACY_FORMAT, directory / LEGACY_WEIGHTS_FILE, config, None
        )
    if not isinstance(data, dict) or "architecture" not in data:
        raise ModelError(
            f"{path} is neither an ns checkpoint nor a timm Hub config (no 'architecture'): "
            "pass a folder written by ns or by timm's save_for_hf"
        )
    ns = data.get("ns")
    if ns is not None and (not isinstance(ns, dict) or ns.get("format") != FORMAT):
        found = ns.get("format") if isinstance(ns, dict) else ns
        raise ModelError(
            f"{path} has ns metadata of format {found!r}, this ns reads {FORMAT} and "
            f"{LEGACY_FORMAT}: upgrade ns"
        )
    config = _timm_config(directory, path, ns)
    timm_view = {k: v for k, v in data.items() if k != "ns"}
    layout: Layout = "timm" if ns is None else FORMAT
    return CheckpointFolder(directory, layout, _hub_weights(directory), config, timm_view)


def _legacy_config(data: dict[str, Any], path: Path) -> CheckpointConfig:
    fields = {k: v for k, v in data.items() if k != "format"}
    try:
        noise = fields.pop("noise")
        return CheckpointConfig(**fields, noise=ModelNoise(**noise))
    except (KeyError, TypeError) as err:
        raise ModelError(f"{path} lacks or misspells a field ({err}): re-save it") from None
    except ModelError as err:
        raise ModelError(f"{path}: {err}") from None


def _timm_config(directory: Path, path: Path, ns: dict[str, Any] | None) -> CheckpointConfig:
    """ns's view of a timm Hub config, parsed by timm; ns's defaults where `ns` is None."""
    try:
        cfg, architecture, _ = load_model_config_from_path(directory)
        channels, height, width = cfg.get("input_size", (3, 224, 224))
        if height != width:
            raise ModelError(
                f"input_size {height}x{width} is not square: ns trains and evaluates square images"
            )
        labels = cfg.get("label_names")
        names = list(labels) if isinstance(labels, list | tuple) else []
        own: dict[str, Any] = (
            {"noise": default_noise(architecture), "ns_version": None}
            if ns is None
            else {
                "noise": ModelNoise(**ns["noise"]),
                **{key: ns[key] for key in ("ema", "extra", "ns_version")},
            }
        )
        return CheckpointConfig(
            model_name=architecture,
            num_classes=cfg["num_classes"],
            class_names=names if len(names) == cfg["num_classes"] else [],
            image_size=height,
            in_chans=channels,
            crop_pct=cfg.get("crop_pct", DEFAULT_CROP_PCT),
            mean=tuple(cfg.get("mean", IMAGENET_DEFAULT_MEAN)),
            std=tuple(cfg.get("std", IMAGENET_DEFAULT_STD)),
            interpolation=cfg.get("interpolation", "bicubic"),
            **own,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{path} lacks or misspells a field ({err!r}): re-save it") from None
    except ModelError as err:
        raise ModelError(f"{path}: {err}") from None


def _hub_weights(directory: Path) -> Path:
    for name in (WEIGHTS_FILE, PICKLE_WEIGHTS_FILE):
        if (directory / name).is_file():
            return directory / name
    raise ModelError(
        f"{directory} has a timm config.json but no {WEIGHTS_FILE} or {PICKLE_WEIGHTS_FILE}: "
        "copy the weights file beside it"
    )


def read_config(directory: Path | str) -> CheckpointConfig:
    """ns's view of checkpoint `directory` (a path or `local-dir:PATH`)."""
    return open_checkpoint(directory).config


def load_checkpoint(
    directory: Path | str,
    *,
    num_classes: int | None = None,
    reinit_classifier: bool = False,
    map_location: torch.device | str = "cpu",
) -> tuple[nn.Module, CheckpointConfig]:
    """Model (in eval mode) and config from `directory`; never unpickles.

    Args:
        directory: a checkpoint folder (any layout `open_checkpoint` reads) or `local-dir:PATH`.
        num_classes: classes wanted; a count other than the checkpoint's needs `reinit_classifier`.
        reinit_classifier: load everything but the classifier, which starts fresh (fine-tuning).
        map_location: device to put the model on.
    """
    folder = open_checkpoint(directory)
    config = folder.config
    wanted = config.num_classes if num_classes is None else num_classes
    if wanted != config.num_classes and not reinit_classifier:
        raise ModelError(
            f"checkpoint {folder.path} has {config.num_classes} classes, {wanted} were asked: "
            "pass reinit_classifier=True to fine-tune it with a fresh classifier"
        )
    model = build_model(config.model_name, wanted, noise=config.noise, in_chans=config.in_chans)
    state = read_state_dict(folder.weights)
    load_into(model, state, source=str(folder.weights), reinit_classifier=reinit_classifier)
    if reinit_classifier:
        config = replace(config, num_classes=wanted, class_names=[])
    return model.to(map_location).eval(), config
