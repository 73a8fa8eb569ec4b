"""Teacher mode (every noise off) and student mode (noise on), restoring each submodule's mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from torch import nn


@contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    saved = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, was_training in saved:
            module.training = was_training


def teacher_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Eval mode inside the block: BN running statistics, no dropout, no stochastic depth."""
    return _mode(model, training=False)


def student_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Train mode inside the block: BN batch statistics, dropout and stochastic depth on."""
    return _mode(model, training=True)
