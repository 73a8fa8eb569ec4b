"""Building a timm model with the paper's noise, optionally from local timm-format weights."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from ns_models.errors import ModelError
from ns_models.ladder import check_name
from ns_models.noise import ModelNoise, default_noise
from ns_models.weights import load_into, read_state_dict


def build_model(
    name: str,
    num_classes: int,
    *,
    noise: ModelNoise | None = None,
    in_chans: int = 3,
    init_from: Path | None = None,
    reinit_classifier: bool = False,
) -> nn.Module:
    """A timm model, never downloaded; random init unless `init_from` names local weights.

    Args:
        name: a ladder name (efficientnet_b0..b7, efficientnet_l2) or any timm model name.
        num_classes: size of the classifier.
        noise: dropout and stochastic depth; `default_noise(name)` when None.
        in_chans: input channels.
        init_from: a `.safetensors` or `.pth`/`.bin` timm state dict, loaded without unpickling.
        reinit_classifier: keep a fresh classifier instead of the one in `init_from`.
    """
    check_name(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes={num_classes!r} for {name!r}: pass a positive integer")
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ModelError(f"in_chans={in_chans!r} for {name!r}: pass a positive integer")
    noise = default_noise(name) if noise is None else noise
    try:
        model = timm.create_model(
            name,
            pretrained=False,
            num_classes=num_classes,
            in_chans=in_chans,
            drop_rate=noise.drop_rate,
            # timm drops None arguments, so models without stochastic depth still build at 0.
            drop_path_rate=noise.drop_path_rate or None,
        )
    except TypeError as err:
        raise ModelError(
            f"timm model {name!r} rejects the noise options ({err}): pass "
            f"noise=ModelNoise(drop_rate={noise.drop_rate}, drop_path_rate=0.0)"
        ) from None
    zero_classifier(model)
    if init_from is not None:
        state = read_state_dict(Path(init_from))
        load_into(model, state, source=str(init_from), reinit_classifier=reinit_classifier)
    return model


def zero_classifier(model: nn.Module) -> None:
    """Start the classifier at zero: uniform predictions, a first loss of ln(classes).

    timm scales EfficientNet's head for 1,000 classes; with 10 it gives logits with a std of ~6
    and a first loss near 10, and the digits teacher reached 67-81% top-1 instead of 91-95%.
    """
    get_classifier = getattr(model, "get_classifier", None)
    head = get_classifier() if get_classifier is not None else None
    if isinstance(head, nn.Linear):
        with torch.no_grad():
            head.weight.zero_()
            if head.bias is not None:
                head.bias.zero_()
