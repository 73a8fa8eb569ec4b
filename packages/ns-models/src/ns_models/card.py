"""Model cards: size, cost and the paper's defaults for one model name."""

from __future__ import annotations

from dataclasses import dataclass

from ns_models.errors import ModelError
from ns_models.ladder import check_name, rung, spec
from ns_models.measure import count_flops, count_parameters, timm_input_sizes
from ns_models.noise import NoiseConfig, default_noise


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
    noise: NoiseConfig
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
