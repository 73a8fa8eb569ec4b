"""Building every ladder size, paper parameter counts and noise defaults."""

import pytest
import torch
from timm.layers import DropPath

from ns_models import LADDER, ModelError, NoiseConfig, build_model, default_noise

# EfficientNet paper, Table 2 (B0-B7), and Noisy Student, Table 5 (L2), for 1000 classes.
PAPER_PARAMS = {
    "efficientnet_b0": 5.3e6,
    "efficientnet_b1": 7.8e6,
    "efficientnet_b2": 9.2e6,
    "efficientnet_b3": 12e6,
    "efficientnet_b4": 19e6,
    "efficientnet_b5": 30e6,
    "efficientnet_b6": 43e6,
    "efficientnet_b7": 66e6,
    "efficientnet_l2": 480e6,
}
PAPER_DROPOUT = dict(zip(LADDER, [0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.5], strict=True))


def meta_build(name: str, num_classes: int = 1000, **kwargs: object) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(name, num_classes, **kwargs)


@pytest.mark.parametrize("name", LADDER[:-1])
def test_b0_to_b7_forward(name: str) -> None:
    model = build_model(name, 10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", ["tf_efficientnet_b0", "resnet18", "tinynet_e"])
def test_other_timm_names_pass_through(name: str) -> None:
    model = build_model(name, 4, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 48, 48)).shape == (2, 4)


@pytest.mark.parametrize("name", LADDER)
def test_parameter_counts_match_paper(name: str) -> None:
    params = sum(p.numel() for p in meta_build(name).parameters())
    assert params == pytest.approx(PAPER_PARAMS[name], rel=0.02)


@pytest.mark.parametrize("name", LADDER)
def test_default_dropout_follows_paper(name: str) -> None:
    assert default_noise(name) == NoiseConfig(PAPER_DROPOUT[name], 0.2)
    assert meta_build(name).drop_rate == PAPER_DROPOUT[name]


def drop_probs(model: torch.nn.Module) -> list[float]:
    """Per block (in order) its stochastic-depth drop probability; 0 where timm uses Identity."""
    return [
        block.drop_path.drop_prob if isinstance(block.drop_path, DropPath) else 0.0
        for stage in model.blocks
        for block in stage
    ]


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_b7"])
def test_drop_path_is_paper_survival_point8_decayed_linearly(name: str) -> None:
    probs = drop_probs(meta_build(name))
    n = len(probs)
    # Survival 0.8 = drop_path_rate 0.2, scaled by block_index / n_blocks as in the paper's
    # code (efficientnet_model.py: `drop_rate *= float(idx) / len(self._blocks)`), so the
    # last block drops 0.2 * (n - 1) / n: 0.1875 for B0's 16 blocks, 0.1964 for B7's 55.
    assert probs == pytest.approx([0.2 * i / n for i in range(n)])
    assert probs[0] < probs[-1] < 0.2
    assert 1 - probs[-1] == pytest.approx(0.8, abs=0.2 / n)


def test_noise_is_overridable() -> None:
    model = meta_build("efficientnet_b0", noise=NoiseConfig(drop_rate=0.1, drop_path_rate=0.4))
    assert model.drop_rate == 0.1
    assert max(drop_probs(model)) == pytest.approx(0.4 * 15 / 16)
    assert max(drop_probs(meta_build("efficientnet_b0", noise=NoiseConfig(0.0, 0.0)))) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "efficientnet_b9", "num_classes": 10}, "unknown model 'efficientnet_b9'"),
        ({"name": "efficientnet_b0", "num_classes": 0}, "num_classes=0"),
        ({"name": "efficientnet_b0", "num_classes": 10, "in_chans": 0}, "in_chans=0"),
        ({"name": "vgg11", "num_classes": 10}, "drop_path_rate=0.0"),
    ],
)
def test_bad_build_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        meta_build(**kwargs)


def test_bad_noise() -> None:
    with pytest.raises(ModelError, match=r"ModelNoise.drop_rate=1.5"):
        NoiseConfig(drop_rate=1.5, drop_path_rate=0.2)


def test_noise_config_is_the_old_name_of_model_noise() -> None:
    import ns_models.noise
    from ns_models import ModelNoise

    with pytest.warns(DeprecationWarning, match="ModelNoise"):
        assert ns_models.noise.NoiseConfig is ModelNoise
