"""Reading state dicts from files without unpickling, and loading them into a model."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ns_models.errors import ModelError

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_NESTED_KEYS = ("state_dict", "model")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file or a `.pth`/`.pt`/`.bin` state dict (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist: pass a .safetensors or .pth file")
    if path.suffix == ".safetensors":
        try:
            state: object = load_file(path, device="cpu")
        except SafetensorError as err:
            raise ModelError(f"{path} is not valid safetensors ({err}): re-export it") from None
    elif path.suffix in TORCH_SUFFIXES:
        state = _torch_load(path)
    else:
        raise ModelError(
            f"weights file {path} has an unknown suffix: use .safetensors or one of "
            f"{', '.join(TORCH_SUFFIXES)}"
        )
    return _strip_wrappers(state, path)


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ModelError(
            f"{path} is not a plain tensor state dict and was not unpickled ({_reason(err)}): "
            "re-save only its state_dict, or convert it to .safetensors, where you trust it"
        ) from None


def _reason(err: Exception) -> str:
    """The useful part of torch's multi-paragraph weights_only error, on one line."""
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n\n|$)", str(err), re.DOTALL)
    text = match.group(1) if match else str(err).strip().split("\n", 1)[0]
    return " ".join(text.split()) or type(err).__name__


def _strip_wrappers(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        state = next((state[k] for k in _NESTED_KEYS if isinstance(state.get(k), dict)), state)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{path} holds no state dict of named tensors: save model.state_dict()")
    clean = {}
    for key, tensor in state.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        clean[key] = tensor
    return clean


def classifier_prefix(model: nn.Module) -> str:
    """State-dict prefix of `model`'s classifier (timm's `get_classifier()`), e.g. `classifier.`."""
    head = model.get_classifier()  # type: ignore[operator]  # timm's method, unknown to nn.Module
    return next(f"{name}." for name, module in model.named_modules() if module is head)


def load_into(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source: str,
    reinit_classifier: bool = False,
) -> None:
    """Copy `state` into `model`; refuse a different classifier unless `reinit_classifier`, and a
    tensor of another kind of dtype (int or bool for float); float16/bfloat16/float32 are cast."""
    own = model.state_dict()
    head = classifier_prefix(model)
    if reinit_classifier:
        state = {k: v for k, v in state.items() if not k.startswith(head)}
        own = {k: v for k, v in own.items() if not k.startswith(head)}
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    if missing or unexpected:
        raise ModelError(
            f"{source} does not fit this architecture ({len(missing)} missing keys, e.g. "
            f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}): "
            "build the model name the weights were trained as"
        )
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if any(not k.startswith(head) for k in wrong):
        key = next(k for k in wrong if not k.startswith(head))
        raise ModelError(
            f"{source}: {key} has shape {tuple(state[key].shape)}, the model expects "
            f"{tuple(own[key].shape)}: build the model name and in_chans the weights were made with"
        )
    if wrong:
        classes = state[wrong[0]].shape[0]
        raise ModelError(
            f"{source} has a {classes}-class classifier, the model has {model.num_classes}: "
            f"pass num_classes={classes}, or reinit_classifier=True to fine-tune with a fresh one"
        )
    other = next((k for k in own if _kind(own[k]) != _kind(state[k])), None)
    if other is not None:
        raise ModelError(
            f"{source}: {other} is {state[other].dtype}, the model expects {own[other].dtype}: "
            "re-export the weights with their original dtypes"
        )
    model.load_state_dict(state, strict=not reinit_classifier)


def _kind(tensor: torch.Tensor) -> str:
    """float, complex, bool or int: a checkpoint may change precision, never the kind."""
    if tensor.dtype == torch.bool:
        return "bool"
    if tensor.is_complex():
        return "complex"
    return "float" if tensor.is_floating_point() else "int"
