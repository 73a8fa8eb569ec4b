"""Model cards: size, cost and the paper's defaults for one model name; a checkpoint's README."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from timm.models._hub import generate_readme

from ns_models.errors import ModelError
from ns_models.ladder import check_name, rung, spec
from ns_models.measure import count_flops, count_parameters, timm_input_sizes
from ns_models.noise import ModelNoise, default_noise

if TYPE_CHECKING:
    from ns_models.checkpoint import CheckpointConfig

_USAGE = """```python
import timm

model = timm.create_model("local-dir:path/to/this/folder", pretrained=True).eval()
config = timm.data.resolve_data_config({}, model=model)  # the preprocessing below
transform = timm.data.create_transform(**config)
logits = model(transform(image).unsqueeze(0))
```
"""


@dataclass(frozen=True, slots=True)
class ModelCard:
    """Facts about one model, measured on the meta device."""

    name: str
    """timm model name."""
    num_classes: int
    """Classifier size the counts refer to."""
    parameters: int
    """Number of parameters."""
    flops: int
    """FLOPs of one image at `test_size` (a multiply-add counts 2; the paper's FLOPS = flops/2)."""
    train_size: int
    """Default training resolution in pixels."""
    test_size: int
    """Default test resolution in pixels."""
    noise: ModelNoise
    """Default student noise."""
    rung: int | None
    """Position on the ladder B0..L2 (0..8), None off the ladder."""


def model_card(name: str, num_classes: int = 1000) -> ModelCard:
    """The card of `name` (ladder resolutions from the papers, otherwise timm's defaults)."""
    check_name(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes={num_classes!r} for {name!r}: pass a positive integer")
    rung_spec = spec(name)
    if rung_spec is None:
        train_size, test_size = timm_input_sizes(name)
    else:
        train_size, test_size = rung_spec.train_size, rung_spec.test_size
    return ModelCard(
        name=name,
        num_classes=num_classes,
        parameters=count_parameters(name, num_classes),
        flops=count_flops(name, test_size, num_classes),
        train_size=train_size,
        test_size=test_size,
        noise=default_noise(name),
        rung=rung(name),
    )


def card_rows(card: ModelCard) -> list[tuple[str, str]]:
    """(field, value) rows, e.g. for a `rich.table.Table`."""
    ladder = "off the ladder" if card.rung is None else f"rung {card.rung} of B0..L2 (0..8)"
    return [
        ("model", card.name),
        ("ladder", ladder),
        ("parameters", f"{card.parameters / 1e6:.2f} M ({card.num_classes} classes)"),
        (
            "FLOPs",
            f"{card.flops / 1e9:.2f} G at {card.test_size} px "
            f"({card.flops / 2e9:.2f} G multiply-adds)",
        ),
        ("train resolution", f"{card.train_size} px"),
        ("test resolution", f"{card.test_size} px"),
        ("dropout", f"{card.noise.drop_rate:g}"),
        ("stochastic depth", f"drop_path_rate {card.noise.drop_path_rate:g}, scaled by depth"),
    ]


def card_lines(card: ModelCard) -> list[str]:
    """The card as aligned plain-text lines."""
    rows = card_rows(card)
    width = max(len(key) for key, _ in rows)
    return [f"{key:<{width}}  {value}" for key, value in rows]


def checkpoint_readme(config: CheckpointConfig) -> str:
    """A checkpoint's `README.md`: a Hub model card written by timm's `generate_readme`.

    `config.extra`'s `steps`, `eval` (top-1, top-5, loss, images) and `teacher` get their own
    lines; its other keys (data, robustness results, ...) are listed as they are.
    """
    extra = dict(config.extra)
    size = config.image_size
    classes = ", ".join(config.class_names[:10]) + (", ..." if config.num_classes > 10 else "")
    details: dict[str, object] = {
        "Model Type": "Image classification",
        "Architecture": f"{config.model_name} (timm)",
        "Classes": f"{config.num_classes}" + (f": {classes}" if config.class_names else ""),
        "Image size": f"{size} x {size}",
        "Preprocessing": (
            f"resize the shorter side to {round(size / config.crop_pct)} px ({config.interpolation}), "
            f"center crop {size} x {size}, scale to [0, 1], normalize with mean "
            f"{list(config.mean)} and std {list(config.std)}"
        ),
        "Trained by": f"ns {config.ns_version} (Noisy Student self-training)",
        "Weights": "exponential moving average (EMA) of the trained weights"
        if config.ema
        else "the trained weights (no EMA)",
        "Training noise": f"dropout {config.noise.drop_rate:g}, stochastic depth "
        f"drop_path_rate {config.noise.drop_path_rate:g}",
    }
    if "steps" in extra:
        details["Training steps"] = extra.pop("steps")
    if isinstance(evaluation := extra.get("eval"), dict):
        del extra["eval"]
        details["Evaluation"] = _eval_lines(evaluation)
    if "teacher" in extra:
        details["Teacher"] = extra.pop("teacher")
    details.update({key: value for key, value in extra.items() if value is not None})
    card = {
        "tags": ["image-classification", "timm", "noisy-student"],
        "license": "unknown",
        "description": f"A {config.model_name} image classifier trained with ns.",
        "details": details,
        "usage": _USAGE,
    }
    return generate_readme(card, config.model_name)


def _eval_lines(result: dict[str, object]) -> dict[str, str]:
    names = {"top1": "top-1", "top5": "top-5", "loss": "loss", "count": "images"}
    lines = {}
    for key, name in names.items():
        value = result.get(key)
        if isinstance(value, float) and key.startswith("top"):
            lines[name] = f"{100 * value:.2f}%"
        elif value is not None:
            lines[name] = f"{value:.4g}" if isinstance(value, float) else str(value)
    return lines
