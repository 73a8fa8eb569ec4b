"""Model cards: counts measured on the meta device, paper resolutions and noise; the README.md
model card of a checkpoint."""

import pytest

from ns_models import (
    CheckpointConfig,
    ModelError,
    NoiseConfig,
    card_lines,
    card_rows,
    model_card,
)
from ns_models.card import checkpoint_readme


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


def test_checkpoint_readme_says_what_trained_it_and_how_well() -> None:
    config = CheckpointConfig(
        model_name="efficientnet_b0",
        num_classes=2,
        class_names=["cat", "dog"],
        image_size=224,
        noise=NoiseConfig(0.2, 0.2),
        ema=True,
        extra={
            "steps": 300,
            "eval": {
                "top1": 0.9123,
                "top5": 1.0,
                "loss": 0.25,
                "count": 500,
                "per_class": [0.9, 0.92],
            },
            "teacher": {"checkpoint": "runs/r/iter-0/teacher/checkpoint", "teacher_id": "ab12"},
            "robustness": {"imagenet-c mCE": 0.61},
        },
        ns_version="0.3.0",
    )
    text = checkpoint_readme(config)
    front, body = text.split("---\n")[1:3]
    assert "library_name: timm" in front and "license: unknown" in front
    assert body.startswith("# Model card for efficientnet_b0")
    for line in (
        "- **Classes:** 2: cat, dog",
        "- **Trained by:** ns 0.3.0 (Noisy Student self-training)",
        "- **Weights:** exponential moving average (EMA) of the trained weights",
        "- **Preprocessing:** resize the shorter side to 256 px (bilinear), center crop 224 x 224",
        "- **Training steps:** 300",
        "  - top-1: 91.23%",
        "  - images: 500",
        "  - teacher_id: ab12",
        "- **robustness:**\n  - imagenet-c mCE: 0.61",
        'timm.create_model("local-dir:',
    ):
        assert line in body
    assert "per_class" not in body  # in config.json, too long for the card
