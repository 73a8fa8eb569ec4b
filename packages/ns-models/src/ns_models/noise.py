"""The noise a student gets: dropout before the classifier and stochastic depth."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from ns_models.errors import ModelError
from ns_models.ladder import spec

STOCHASTIC_DEPTH = 0.2
"""timm `drop_path_rate`: the paper's survival probability 0.8 (section 3, "Noising Student")."""

OFF_LADDER_DROP_RATE = 0.2
"""Dropout for models off the ladder: B0's value."""


@dataclass(frozen=True, slots=True)
class ModelNoise:
    """Model noise, as timm's `create_model` arguments (called `NoiseConfig` before ns 0.2; the
    training job's noise, augmentation included, is `ns_train.config.NoiseConfig`)."""

    drop_rate: float
    """Dropout probability before the classifier."""
    drop_path_rate: float
    """Stochastic-depth drop probability, scaled by timm as `rate * block_index / n_blocks`."""

    def __post_init__(self) -> None:
        for field in ("drop_rate", "drop_path_rate"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ModelError(
                    f"ModelNoise.{field}={value!r} is not a probability: use a number in [0, 1)"
                )

    def to_dict(self) -> dict[str, float]:
        """JSON form: `{"drop_rate": ..., "drop_path_rate": ...}`."""
        return {"drop_rate": float(self.drop_rate), "drop_path_rate": float(self.drop_path_rate)}


def default_noise(name: str) -> ModelNoise:
    """The paper's noise for `name`: its EfficientNet dropout and stochastic depth 0.2."""
    rung_spec = spec(name)
    drop_rate = OFF_LADDER_DROP_RATE if rung_spec is None else rung_spec.drop_rate
    return ModelNoise(drop_rate=drop_rate, drop_path_rate=STOCHASTIC_DEPTH)


def __getattr__(name: str) -> Any:
    """`NoiseConfig`, ns 0.2's name of `ModelNoise`, still imports (with a DeprecationWarning)."""
    if name == "NoiseConfig":
        warnings.warn(
            "ns_models.NoiseConfig is now ns_models.ModelNoise", DeprecationWarning, stacklevel=2
        )
        return ModelNoise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
