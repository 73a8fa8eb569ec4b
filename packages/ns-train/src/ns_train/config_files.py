"""Configs from TOML files and `key=value` overrides (`optim.name=sgd`), checked field by field."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from ns_train.config import from_dict, to_dict
from ns_train.errors import TrainError

T = TypeVar("T")


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of a TOML file; TrainError naming the file and line when it does not parse."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise TrainError(f"config file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise TrainError(f"{path} is not valid TOML: {err}") from err


def parse_override(text: str) -> tuple[list[str], Any]:
    """`optim.lr_per_2048=0.256` → (["optim", "lr_per_2048"], 0.256); values are TOML/JSON literals."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise TrainError(f"override {text!r} is not KEY=VALUE (e.g. --set optim.name=sgd)")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `data` with each `a.b=value` set (nested tables created as needed)."""
    result = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TrainError(f"override {text!r}: {part} is not a table")
        node[path[-1]] = value
    return result


def resolve(cls: type[T], base: T, file: Path | None, overrides: list[str]) -> T:
    """`base`, then the TOML file's fields, then the overrides: unknown keys name the nearest field."""
    data = to_dict(base)
    if file is not None:
        data = _merge(data, read_toml(file))
    return from_dict(cls, apply_overrides(data, overrides))


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
