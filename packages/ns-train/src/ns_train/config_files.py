"""Configs from TOML files and `key=value` overrides (`optim.name=sgd`), checked field by field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from ns_train.config import from_dict, to_dict, upgrade
from ns_train.errors import TrainError

T = TypeVar("T")


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of a TOML file; TrainError naming the file when it is missing or does not parse."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise TrainError(f"config file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise TrainError(f"{path} is not valid TOML: {err}") from err


def parse_override(text: str) -> tuple[list[str], Any]:
    """`optim.lr_per_2048=0.256` → (["optim", "lr_per_2048"], 0.256); values are TOML literals,
    a bare word is a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise TrainError(f"--set {text!r} is not KEY=VALUE: write e.g. --set optim.name=sgd")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def overrides_as_dict(overrides: list[str]) -> dict[str, Any]:
    """`["student.epochs=5", "seed=1"]` → `{"student": {"epochs": 5}, "seed": 1}`."""
    result: dict[str, Any] = {}
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TrainError(f"--set {text!r}: {part} is set twice, as a value and a table")
        node[path[-1]] = value
    return result


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` over `base`: nested tables change only the keys they name."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve(cls: type[T], base: T, file: Path | None, overrides: list[str]) -> T:
    """`base`, then the TOML file's fields, then the overrides: unknown keys name the nearest field;
    old spellings (`OLD_NAMES`) are read in the file and the overrides alike."""
    data = to_dict(base)
    if file is not None:
        data = merge(data, upgrade(cls, read_toml(file)))
    return from_dict(cls, merge(data, upgrade(cls, overrides_as_dict(overrides))))
