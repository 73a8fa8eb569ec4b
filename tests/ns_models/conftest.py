"""One intra-op thread for these tiny-tensor tests (on 2 shared cores several times faster), and
a random classifier for tests that compare outputs (a fresh one is all zeros)."""

from collections.abc import Iterator

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_head(model: nn.Module) -> nn.Module:
    """`model` with a random classifier, so its outputs differ from input to input."""
    with torch.no_grad():
        model.get_classifier().weight.normal_(std=0.05)
        model.get_classifier().bias.normal_(std=0.05)
    return model
