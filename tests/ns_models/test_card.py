"""Model cards: counts measured on the meta device, paper resolutions and noise."""

import pytest

from ns_models import ModelError, NoiseConfig, card_lines, card_rows, model_card


def test_b0_card_matches_paper() -> None:
    card = model_card("efficientnet_b0")
    assert card.parameters == pytest.approx(5.3e6, rel=0.02)
    assert card.flops / 2 == pytest.approx(0.39e9, rel=0.02)  # paper: 0.39B multiply-adds
    assert (card.train_size, card.test_size, card.rung) == (224, 224, 0)
    assert card.noise == NoiseConfig(0.2, 0.2)


def test_b7_and_l2_cards() -> None:
    b7 = model_card("efficientnet_b7")
    assert b7.flops / 2 == pytest.approx(37e9, rel=0.03)  # paper: 37B at 600 px
    l2 = model_card("efficientnet_l2")
    assert l2.parameters == pytest.approx(480e6, rel=0.02)
    assert (l2.train_size, l2.test_size) == (475, 800)
    assert l2.noise.drop_rate == 0.5
    assert l2.flops / 2 == pytest.approx(475.7e9, rel=0.01)  # measured: 12.6x B7, at 800 px


def test_off_ladder_card_uses_timm_defaults() -> None:
    card = model_card("resnet18", num_classes=10)
    assert card.rung is None and card.num_classes == 10
    assert (card.train_size, card.test_size) == (224, 288)


def test_rendering() -> None:
    card = model_card("efficientnet_b0")
    rows = dict(card_rows(card))
    assert rows["parameters"] == "5.29 M (1000 classes)"
    assert rows["FLOPs"] == "0.77 G at 224 px (0.39 G multiply-adds)"
    lines = card_lines(card)
    assert lines[0].split() == ["model", "efficientnet_b0"]
    columns = {line.index(value) for line, (_, value) in zip(lines, rows.items(), strict=True)}
    assert len(columns) == 1  # values aligned


def test_bad_card_requests() -> None:
    with pytest.raises(ModelError, match="unknown model 'efficientnet_b9'"):
        model_card("efficientnet_b9")
    with pytest.raises(ModelError, match="num_classes=0"):
        model_card("efficientnet_b0", num_classes=0)
