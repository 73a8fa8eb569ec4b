"""Typed configuration of a training job: small keyword-only dataclasses that reject bad values.

`from_dict` builds them from TOML/JSON-like dicts and names the nearest field when a key is
unknown; `to_dict` gives what is saved beside every run (`config.json`). A field that was renamed
keeps its old spelling readable for one version: the class lists it in `OLD_NAMES` and
`upgrade` (which `from_dict` calls) moves it to the new name.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
import warnings
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from ns_data.loading.config import LoaderConfig
from ns_train.errors import TrainError

T = TypeVar("T")


@dataclass(kw_only=True, slots=True)
class OptimConfig:
    """Optimizer and learning-rate schedule (the paper's EfficientNet recipe by default)."""

    name: Literal["rmsprop", "sgd", "adamw"] = "rmsprop"
    """rmsprop (paper: decay 0.9, momentum 0.9, eps 1e-3), sgd (nesterov 0.9) or adamw."""
    lr_per_2048: float = 0.128
    """Learning rate for a global batch of 2048, scaled linearly to the actual batch."""
    warmup_epochs: float = 5.0
    """Linear warm-up from 0, in epochs."""
    schedule: Literal["step", "cosine"] = "step"
    """step: ×`decay_rate` every `decay_epochs` (paper: 0.97 every 2.4); cosine: to 0 at the end."""
    decay_rate: float = 0.97
    decay_epochs: float = 2.4
    weight_decay: float = 1e-5
    """L2 weight decay, not applied to batch-norm parameters and biases."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value (None: no clipping)."""

    def __post_init__(self) -> None:
        _positive(self, "lr_per_2048", "decay_epochs")
        _non_negative(self, "warmup_epochs", "weight_decay")
        if not 0 < self.decay_rate <= 1:
            raise TrainError(f"optim.decay_rate must be in (0, 1], got {self.decay_rate}")


@dataclass(kw_only=True, slots=True)
class NoiseConfig:
    """The noise a job trains with: input augmentation and model noise (dropout, stochastic
    depth; None: the model's paper default, see `ns_models.ModelNoise`)."""

    randaugment_n: int = 2
    randaugment_m: int = 9
    """RandAugment magnitude bin in [0, 30] (torchvision/DALI scale; see ns_data.loading.views)."""
    flip: bool = True
    crop_scale: tuple[float, float] = (0.08, 1.0)
    drop_rate: float | None = None
    """Dropout before the classifier (paper: 0.2 for B0 rising to 0.5 for B7/L2)."""
    drop_path_rate: float | None = None
    """Stochastic depth drop probability of the last block (paper: 0.2 = survival 0.8)."""


@dataclass(kw_only=True, slots=True)
class TrainConfig:
    """One training job: a teacher on labeled data, or a student on labeled + pseudo-labeled data."""

    model: str = "efficientnet_b0"
    image_size: int = 224
    epochs: float = 10.0
    """Epochs over the labeled set (teacher) or over the pseudo-labeled set (student)."""
    batch_size: int = 64
    """Labeled images per step over all ranks (each rank takes batch_size / world size)."""
    unlabeled_ratio: int = 3
    """Student: unlabeled images per labeled image in each step (paper: 14 for L2)."""
    soft_labels: bool = True
    """Student: train on the teacher's soft distribution (True) or its argmax (False)."""
    label_smoothing: float = 0.1
    ema_decay: float | None = 0.9999
    """Exponential moving average of the weights used for eval and labeling (None: off)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    seed: int = 0
    device: str = "auto"
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    """Loader backend and workers of the job's loaders (`[student.loader]` in a run config)."""
    channels_last: bool = True
    """Channels-last memory format (several-fold faster convolutions on CPU)."""
    bf16: bool = False
    """bfloat16 autocast."""
    compile: bool = False
    """torch.compile the model (slow first step, faster after)."""
    eval_every: float = 1.0
    """Evaluate on the eval set every this many epochs."""
    checkpoint_every: int = 0
    """Save a resumable snapshot every this many steps (0: none; the final checkpoint is always saved)."""
    keep_checkpoints: int = 2
    """Snapshots kept on disk (the newest)."""
    freeze_blocks: int = 0
    """Freeze the stem and the first N blocks (fine-tuning at test resolution, as the paper did for L2)."""
    sync_bn: bool = False
    """Synchronize batch-norm statistics across ranks (SyncBatchNorm) when distributed."""
    backend: InitVar[str | None] = None
    """Old spelling of `loader.backend` (ns 0.2), read for one version."""
    workers: InitVar[int | None] = None
    """Old spelling of `loader.workers` (ns 0.2), read for one version."""

    OLD_NAMES: ClassVar[dict[str, str]] = {"backend": "loader.backend", "workers": "loader.workers"}
    """Old spellings still read in TOML, `--set` and stored configs (ns 0.2, removed in 0.4)."""

    def __post_init__(self, backend: str | None, workers: int | None) -> None:
        if backend is not None or workers is not None:
            warnings.warn(
                "TrainConfig(backend=, workers=) are now TrainConfig(loader=LoaderConfig(...))",
                DeprecationWarning,
                stacklevel=3,
            )
            self.loader = LoaderConfig(
                backend=self.loader.backend if backend is None else backend,  # type: ignore[arg-type]  # checked there
                workers=self.loader.workers if workers is None else workers,
            )
        _positive(
            self,
            "image_size",
            "epochs",
            "batch_size",
            "unlabeled_ratio",
            "eval_every",
            "keep_checkpoints",
        )
        _non_negative(self, "checkpoint_every", "freeze_blocks")
        if not 0 <= self.label_smoothing < 1:
            raise TrainError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise TrainError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")


@dataclass(kw_only=True, slots=True)
class LabelConfig:
    """A labeling job: what each labels file keeps (`topk`, `temperature`: both part of the
    labels' identity) and how the teacher runs (`[label]` in a run config)."""

    topk: int = 10
    """Classes kept per sample (at most the teacher's number of classes)."""
    temperature: float = 1.0
    """Softmax temperature applied to the teacher's logits."""
    batch_size: int = 256
    """Images per forward pass and per loader batch (`ns label --batch-size` defaults to 128)."""
    noised: bool = False
    """Ablation: keep the teacher's dropout and stochastic depth on (batch norm on its running
    statistics); the paper labels without noise."""
    device: str = "auto"
    """auto (cuda when present), cpu, cuda or cuda:N."""
    bf16: bool = False
    """bfloat16 autocast (GPUs, and CPUs with AMX or AVX512-BF16: `ns bench label` times it;
    labels then differ slightly from float32 ones)."""
    channels_last: bool = True
    """Channels-last memory format for the model and the images."""
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    """Loader backend and workers."""

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise TrainError(f"label temperature must be positive, got {self.temperature}")
        if self.topk < 1 or self.batch_size < 1:
            raise TrainError(
                f"label topk and batch_size must be positive, got {self.topk} and {self.batch_size}"
            )


def loader_with_old_keywords(
    loader: LoaderConfig | None, keywords: dict[str, Any], function: str
) -> LoaderConfig:
    """`loader` (or the defaults) changed by ns 0.2's `backend=` and `workers=` keyword arguments
    of `function`, read for one version with a DeprecationWarning; others are a TypeError."""
    loader = loader if loader is not None else LoaderConfig()
    if not keywords:
        return loader
    unknown = sorted(set(keywords) - {"backend", "workers"})
    if unknown:
        raise TypeError(f"{function}() got unexpected keyword arguments {', '.join(unknown)}")
    warnings.warn(
        f"{function}(backend=, workers=) is now {function}(loader=LoaderConfig(...))",
        DeprecationWarning,
        stacklevel=3,
    )
    return dataclasses.replace(loader, **keywords)


def _positive(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise TrainError(
                f"{type(obj).__name__}.{name} must be positive, got {getattr(obj, name)}"
            )


def _non_negative(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise TrainError(f"{type(obj).__name__}.{name} must be >= 0, got {getattr(obj, name)}")


def to_dict(config: object) -> dict[str, Any]:
    """A JSON-able dict of a config dataclass (nested dataclasses become dicts)."""
    return dataclasses.asdict(config)  # type: ignore[call-overload]  # any config dataclass


def upgrade(cls: type, data: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """`data` with the old spellings of `cls`'s fields (`OLD_NAMES`, nested configs' too) moved
    to their new names; both spellings of one field in `data` are refused. Upgrade each layer
    of a merge (preset, file, `--set`) before merging, so a new name there does not clash."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return data
    result = dict(data)
    for old, new in getattr(cls, "OLD_NAMES", {}).items():
        if old not in result:
            continue
        *tables, leaf = new.split(".")
        node = result
        for table in tables:
            child = node.get(table)
            child = to_dict(child) if dataclasses.is_dataclass(child) else child
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise TrainError(f"{where}.{table} must be a table, got {child!r}")
            node[table] = node = dict(child)
        if leaf in node:
            raise TrainError(
                f"{where}.{old} is the old spelling of {where}.{new}: give only {where}.{new}"
            )
        node[leaf] = result.pop(old)
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[item.name]) and isinstance(result.get(item.name), dict):
            result[item.name] = upgrade(hints[item.name], result[item.name], f"{where}.{item.name}")
    return result


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build `cls` from a dict; an unknown key is refused naming the nearest known field, an old
    spelling (`OLD_NAMES`) is read as its new name."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # a config dataclass
    values: dict[str, Any] = {}
    for key, value in upgrade(cls, data, where).items():
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = (
                f"; did you mean {near[0]!r}?"
                if near
                else f"; known fields: {', '.join(sorted(known))}"
            )
            raise TrainError(f"unknown field {where}.{key}{hint}")
        values[key] = _typed(value, hints[key], f"{where}.{key}")
    return cls(**values)


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` as field `where` of type `hint` takes it (a TOML array becomes a tuple, a table a
    nested config); TrainError naming the field when it is of another type, as TOML and `--set`
    can give any (`batch_size = "64"`, `epochs = inf`, `optim = "sgd"`)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _typed(value, option, where)
            except TrainError:
                continue
        raise TrainError(f"{where} must be {_kind(hint)}, got {value!r}")
    if origin is typing.Literal:
        if isinstance(value, str) and value in typing.get_args(hint):
            return value
        raise TrainError(f"{where} must be {_kind(hint)}, got {value!r}")
    if origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise TrainError(f"{where} must be {_kind(hint)}, got {value!r}")
        if len(items) == 2 and items[1] is Ellipsis:
            items = (items[0],) * len(value)
        elif len(value) != len(items):
            raise TrainError(f"{where} must be {_kind(hint)}, got {len(value)} values")
        return tuple(
            _typed(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, items, strict=True))
        )
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return from_dict(hint, value, where)
        if isinstance(value, hint):
            return value
        raise TrainError(f"{where} must be a table of {hint.__name__} fields, got {value!r}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is float and number and not math.isfinite(value):
        raise TrainError(f"{where} must be a finite number, got {value!r}")
    if (
        (hint is bool and not isinstance(value, bool))
        or (hint is int and not (number and isinstance(value, int)))
        or (hint is float and not number)
        or (hint is str and not isinstance(value, str))
    ):
        raise TrainError(f"{where} must be {_kind(hint)}, got {value!r}")
    return value


def _kind(hint: Any) -> str:
    """How a message names a field's type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(o) for o in typing.get_args(hint) if o is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    if origin is tuple:
        items = typing.get_args(hint)
        plural = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
        name = plural.get(items[0], "values")
        return f"a list of {name}" if items[-1] is Ellipsis else f"a list of {len(items)} {name}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def replace(config: T, **changes: Any) -> T:
    """A copy of a config with some fields changed (validated again)."""
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]  # a config dataclass
