"""How many CPU cores this process may use: its affinity (which cgroups, `taskset` and schedulers
narrow), not the machine's count, shared by the torchrun ranks on this machine."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cores_per_process() -> int:
    """This process's share of the usable cores when torchrun starts several ranks here."""
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, usable_cores() // max(1, local_ranks))
