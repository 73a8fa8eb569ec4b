"""Teacher mode switches every noise off, student mode on; both restore every submodule."""

import pytest
import torch
from torch import nn

from ns_models import build_model, student_mode, teacher_mode

from .conftest import random_head


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return random_head(build_model("efficientnet_b0", 10))


def test_teacher_mode_is_deterministic(model: nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32)
    model.train()
    with teacher_mode(model), torch.no_grad():
        assert not any(m.training for m in model.modules())
        assert torch.equal(model(x), model(x))


def test_student_mode_is_noisy(model: nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with student_mode(model), torch.no_grad():
        assert all(m.training for m in model.modules())
        assert not torch.allclose(model(x), model(x))


def test_modes_restore_every_submodule(model: nn.Module) -> None:
    model.train()
    model.bn1.eval()  # a frozen BN inside a training model must stay frozen afterwards
    before = {name: m.training for name, m in model.named_modules()}
    with teacher_mode(model):
        with student_mode(model):
            assert model.bn1.training
        assert not model.training
    assert {name: m.training for name, m in model.named_modules()} == before
    with pytest.raises(RuntimeError), student_mode(model):
        raise RuntimeError("boom")
    assert {name: m.training for name, m in model.named_modules()} == before
