"""Speed knobs are opt-in and leave the model's results intact."""

import torch

from ns_models import SpeedConfig, apply_speed_knobs, autocast, build_model, prepare_images, unwrap

from .conftest import random_head


def test_knobs_off_by_default() -> None:
    model = build_model("tinynet_e", 10)
    assert apply_speed_knobs(model, SpeedConfig()) is model
    with autocast(SpeedConfig()):
        assert model.eval()(torch.randn(2, 3, 32, 32)).dtype == torch.float32


def test_channels_last_and_bf16() -> None:
    torch.manual_seed(0)
    model = random_head(build_model("tinynet_e", 10)).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
        cfg = SpeedConfig(channels_last=True, bf16=True)
        fast = apply_speed_knobs(model, cfg)
        assert fast.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
        batch = prepare_images(images, cfg)
        assert batch.is_contiguous(memory_format=torch.channels_last)
        with autocast(cfg, images.device):
            logits = fast(batch)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), expected, rtol=0.1, atol=0.1)


def test_compile_wraps_and_unwraps() -> None:
    model = build_model("tinynet_e", 10)
    compiled = apply_speed_knobs(model, SpeedConfig(compile=True))  # compiles lazily
    assert compiled is not model and unwrap(compiled) is model
