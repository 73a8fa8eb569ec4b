"""Checkpoints: a directory with `weights.safetensors` + `config.json`, written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ns_models.errors import ModelError
from ns_models.noise import NoiseConfig
from ns_models.registry import build_model
from ns_models.speed import unwrap
from ns_models.weights import load_into, read_state_dict

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "ns-checkpoint/1"


def _ns_version() -> str:
    try:
        return version("ns-models")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointConfig:
    """What `config.json` records beside the weights."""

    model_name: str
    """timm model name the weights belong to."""
    num_classes: int
    """Size of the classifier."""
    class_names: list[str]
    """One name per class, or empty when the task's names are not known yet."""
    image_size: int
    """Resolution the model was trained at and should be evaluated at, in pixels."""
    noise: NoiseConfig
    """Dropout and stochastic depth the model trains with."""
    ema: bool = False
    """True when the weights are an exponential moving average."""
    in_chans: int = 3
    """Input channels."""
    extra: dict[str, object] = field(default_factory=dict)
    """Caller's JSON-able metadata (e.g. iteration, top-1), stored as is."""
    ns_version: str = field(default_factory=_ns_version)
    """Version of ns-models that wrote the checkpoint."""

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
        if not isinstance(self.noise, NoiseConfig):
            raise ModelError("CheckpointConfig.noise is not a NoiseConfig: pass NoiseConfig(...)")
        if not isinstance(self.extra, dict):
            raise ModelError("CheckpointConfig.extra is not a dict: pass {'key': value, ...}")
        try:
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ModelError(
                f"CheckpointConfig.extra is not JSON-able ({err}): keep to str, numbers, "
                "bools, None, lists and dicts"
            ) from None

    def to_json(self) -> dict[str, object]:
        """The `config.json` content."""
        return {"format": FORMAT, **asdict(self), "noise": self.noise.to_dict()}

    @classmethod
    def from_json(cls, data: object, source: Path) -> CheckpointConfig:
        """Parse `config.json` content read from `source`."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"{source} is not an {FORMAT} config: save it with save_checkpoint")
        fields = {k: v for k, v in data.items() if k != "format"}
        try:
            noise = fields.pop("noise")
            return cls(**fields, noise=NoiseConfig(**noise))
        except (KeyError, TypeError) as err:
            raise ModelError(f"{source} lacks or misspells a field ({err}): re-save it") from None
        except ModelError as err:
            raise ModelError(f"{source}: {err}") from None


def save_checkpoint(
    directory: Path, model: nn.Module, config: CheckpointConfig, *, overwrite: bool = False
) -> Path:
    """Write `model`'s weights and `config` to `directory` via a temporary directory + rename.

    `config.ns_version` is stamped with the running version. With `overwrite`, the old
    directory is renamed aside, the new one renamed in, then the old one deleted.
    """
    directory = Path(directory)
    model = unwrap(model)
    if directory.exists() and not overwrite:
        raise ModelError(f"checkpoint {directory} exists: pick a new directory or overwrite=True")
    if getattr(model, "num_classes", config.num_classes) != config.num_classes:
        raise ModelError(
            f"model has {model.num_classes} classes, config for {directory} says "
            f"{config.num_classes}: make CheckpointConfig.num_classes match the model"
        )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        save_file(state, tmp / WEIGHTS_FILE, metadata={"format": "pt"})
        config = replace(config, ns_version=_ns_version())
        (tmp / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2, allow_nan=False))
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            _fsync(tmp / name)
        _rename_into_place(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _rename_into_place(tmp: Path, directory: Path) -> None:
    if not directory.exists():
        tmp.rename(directory)
        return
    old = directory.with_name(f".{directory.name}.{uuid.uuid4().hex}.old")
    directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old)


def read_config(directory: Path) -> CheckpointConfig:
    """The `config.json` of checkpoint `directory`."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{path} not found: pass a directory written by save_checkpoint")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path} is not valid JSON ({err}): re-save the checkpoint") from None
    return CheckpointConfig.from_json(data, path)


def load_checkpoint(
    directory: Path,
    *,
    num_classes: int | None = None,
    reinit_classifier: bool = False,
    map_location: torch.device | str = "cpu",
) -> tuple[nn.Module, CheckpointConfig]:
    """Model (in eval mode) and config from `directory`; never unpickles.

    Args:
        directory: a checkpoint written by `save_checkpoint`.
        num_classes: classes wanted; a count other than the checkpoint's needs `reinit_classifier`.
        reinit_classifier: load everything but the classifier, which starts fresh (fine-tuning).
        map_location: device to put the model on.
    """
    directory = Path(directory)
    config = read_config(directory)
    wanted = config.num_classes if num_classes is None else num_classes
    if wanted != config.num_classes and not reinit_classifier:
        raise ModelError(
            f"checkpoint {directory} has {config.num_classes} classes, {wanted} were asked: "
            "pass reinit_classifier=True to fine-tune it with a fresh classifier"
        )
    model = build_model(config.model_name, wanted, noise=config.noise, in_chans=config.in_chans)
    weights = directory / WEIGHTS_FILE
    state = read_state_dict(weights)
    load_into(model, state, source=str(weights), reinit_classifier=reinit_classifier)
    if reinit_classifier:
        config = replace(config, num_classes=wanted, class_names=[])
    return model.to(map_location).eval(), config
