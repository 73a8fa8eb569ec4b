"""What makes a resumed `ns run` bit-identical to an uninterrupted one, pinned down.

A resumed step runs in a process that skipped the steps before it, so no earlier step may leave
state behind that changes the numbers of a later one. The one found: numba's OpenMP threading
layer (the selection plan's kernels) set the process's OpenMP thread count to every core, which
torch shares, so a student trained after the plan in the same process ran on more threads than
one resumed in a fresh process, and its weights differed in the last bits. The end-to-end check
is tests/faults/test_sigkill.py::test_run_killed_then_rerun_ends_as_an_uninterrupted_run[student-9].
"""

from __future__ import annotations

import pytest

from .conftest import run_child

PLAN_THEN_THREADS = """
import sys
import numpy as np
import torch
torch.set_num_threads(1)
torch.ones(512, 512) @ torch.ones(512, 512)  # torch starts its OpenMP pool
from ns_data.labels.selection import select
select(np.zeros(200, np.int32), np.linspace(0, 1, 200).astype(np.float16), num_classes=4,
       threshold=0.0, per_class=np.full(4, 50))
sys.exit(0 if torch.get_num_threads() == 1 else 10 + torch.get_num_threads())
"""


@pytest.mark.slow
def test_a_selection_plan_leaves_torch_threads_alone() -> None:
    code = run_child(PLAN_THEN_THREADS)
    assert code == 0, f"after a plan torch runs on {code - 10} threads instead of 1"
