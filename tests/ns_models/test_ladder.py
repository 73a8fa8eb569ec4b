"""The ladder as data, name checks and size comparisons."""

import pytest

from ns_models import LADDER, SPECS, ModelError, check_name, is_at_least, next_larger, rung


def test_ladder_is_b0_to_b7_then_l2() -> None:
    assert (*(f"efficientnet_b{i}" for i in range(8)), "efficientnet_l2") == LADDER
    assert set(SPECS) == set(LADDER)


def test_paper_resolutions() -> None:
    sizes = [SPECS[name].test_size for name in LADDER]
    assert sizes == [224, 240, 260, 300, 380, 456, 528, 600, 800]
    assert SPECS["efficientnet_l2"].train_size == 475


@pytest.mark.parametrize(
    ("name", "larger"),
    [
        ("efficientnet_b0", "efficientnet_b1"),
        ("efficientnet_b6", "efficientnet_b7"),
        ("efficientnet_b7", "efficientnet_l2"),
        ("tf_efficientnet_b3", "tf_efficientnet_b4"),
        ("tf_efficientnet_b0.ns_jft_in1k", "tf_efficientnet_b1"),
    ],
)
def test_next_larger(name: str, larger: str) -> None:
    assert next_larger(name) == larger


def test_next_larger_refuses_top_and_off_ladder() -> None:
    with pytest.raises(ModelError, match="largest on the ladder"):
        next_larger("efficientnet_l2")
    with pytest.raises(ModelError, match="not on the ladder"):
        next_larger("resnet18")


def test_is_at_least() -> None:
    assert is_at_least("efficientnet_b1", "efficientnet_b0")
    assert is_at_least("efficientnet_b3", "efficientnet_b3")
    assert not is_at_least("efficientnet_b0", "efficientnet_l2")
    assert is_at_least("tf_efficientnet_b4", "efficientnet_b2")
    # Off the ladder the parameter counts decide: resnet18 11.7M, B0 5.3M, B3 12.2M.
    assert is_at_least("resnet18", "efficientnet_b0")
    assert not is_at_least("resnet18", "efficientnet_b3")


def test_rung() -> None:
    assert rung("efficientnet_b0") == 0
    assert rung("tf_efficientnet_l2") == 8
    assert rung("tinynet_e") is None


def test_unknown_name_suggests_near_names() -> None:
    with pytest.raises(ModelError) as err:
        check_name("efficientnet_b9")
    message = str(err.value)
    assert message.startswith(
        "unknown model 'efficientnet_b9': choose one of efficientnet_b0..b7, efficientnet_l2 "
        "or any timm model name (see `timm.list_models()`)"
    )
    assert "did you mean" in message and "'efficientnet_b8'" in message
    assert "\n" not in message
