"""What the ranks of one job say to each other: rank 0 decides and writes, every rank follows.

    plan = on_main(runtime, lambda: make_plan(...))   # rank 0 works, the others wait for its result

Each helper is a no-op for one process, so the engine calls them without asking whether it runs
under torchrun. Values travel with `torch.distributed`'s object collectives (small values only:
decisions, records, paths).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

from ns_train.errors import TrainError
from ns_train.runtime import Runtime, collective_timeout

T = TypeVar("T")


def barrier(runtime: Runtime) -> None:
    """Wait until every rank is here."""
    if runtime.distributed:
        dist.barrier()


def broadcast(runtime: Runtime, value: T) -> T:
    """Rank 0's `value`, on every rank."""
    if not runtime.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(runtime: Runtime, value: T) -> list[T]:
    """Every rank's `value`, in rank order, on every rank."""
    if not runtime.distributed:
        return [value]
    values = [value] * runtime.world_size  # placeholders: every one is replaced
    dist.all_gather_object(values, value)
    return values


def any_signal(runtime: Runtime, signum: int | None) -> int | None:
    """The stop signal that reached any rank (the largest number), or None: every rank learns
    of a SIGTERM that reached only some. Host-side, over gloo (a control group beside NCCL), so
    it costs microseconds and no GPU synchronization: cheap enough to ask after every step."""
    if not runtime.distributed:
        return signum
    flag = torch.tensor([signum or 0], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=_control_group())
    return int(flag.item()) or None


_CONTROL: list[dist.ProcessGroup] = []


def _control_group() -> dist.ProcessGroup | None:
    """The default group when it is gloo, else a gloo group over the same ranks (made once, by
    every rank at the same call, as `new_group` needs)."""
    if dist.get_backend() == "gloo":
        return None
    if not _CONTROL:
        group = dist.new_group(backend="gloo", timeout=collective_timeout())
        assert isinstance(group, dist.ProcessGroup)  # every rank is in a group of all ranks
        _CONTROL.append(group)
    return _CONTROL[0]


def on_main(runtime: Runtime, work: Callable[[], T]) -> T:
    """Run `work` on rank 0 alone; every rank returns its result, or raises when it failed.

    The other ranks wait meanwhile (see `runtime.collective_timeout`). A failure on rank 0 is
    raised there as it is and on the others as a `TrainError` with the same message, so every
    rank stops with the same one line instead of waiting for a result that never comes.
    """
    if not runtime.distributed:
        return work()
    outcome: tuple[bool, object]
    if runtime.is_main:
        try:
            outcome = (True, work())
        except Exception as err:
            broadcast(runtime, (False, str(err)))
            raise
    else:
        outcome = (True, None)
    ok, value = broadcast(runtime, outcome)
    if not ok:
        raise TrainError(f"rank 0 failed: {value}")
    return value  # type: ignore[return-value]  # ok: value is rank 0's work() result
