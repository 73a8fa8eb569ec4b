"""The noise a student gets: dropout before the classifier and stochastic depth."""

from __future__ import annotations

from dataclasses import dataclass

from ns_models.errors import ModelError
from ns_models.ladder import spec

STOCHASTIC_DEPTH = 0.2
"""timm `drop_path_rate`: the paper's survival probability 0.8 (section 3, "Noising Student")."""

OFF_LADDER_DROP_RATE = 0.2
"""Dropout for models off the ladder: B0's value."""


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """Model noise, as timm's `create_model` arguments."""

    drop_rate: float
    """Dropout probability before the classifier."""
    drop_path_rate: float
    """Stochastic-depth drop probability, scaled by timm as `rate * block_index / n_blocks`."""

    def __post_init__(self) -> None:
        for field in ("drop_rate", "drop_path_rate"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ModelError(
                    f"NoiseConfig.{field}={value!r} is not a probability: use a number in [0, 1)"
                )

    def to_dict(self) -> dict[str, float]:
        """JSON form: `{"drop_rate": ..., "drop_path_rate": ...}`."""
        return {"drop_rate": float(self.drop_rate), "drop_path_rate": float(self.drop_path_rate)}


def default_noise(name: str) -> NoiseConfig:
    """The paper's noise for `name`: its EfficientNet dropout and stochastic depth 0.2."""
    rung_spec = spec(name)
    drop_rate = OFF_LADDER_DROP_RATE if rung_spec is None else rung_spec.drop_rate
    return NoiseConfig(drop_rate=drop_rate, drop_path_rate=STOCHASTIC_DEPTH)
