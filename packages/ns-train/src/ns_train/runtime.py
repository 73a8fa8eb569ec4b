"""Where the engine runs: device choice, CPU threads, seeding, and (under torchrun) the process group."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from ns_data.cpus import cores_per_process
from ns_train.errors import TrainError


@dataclass(frozen=True, slots=True)
class Runtime:
    """This process's device, rank and world size."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False
    """Whether this `start` joined the process group (then its `stop` leaves it)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_main_process() -> bool:
    """Whether this process is rank 0 of its torchrun job (or runs alone)."""
    return int(os.environ.get("RANK", "0")) == 0


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when present, else CPU; `cuda` without a GPU is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise TrainError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {name!r} asked for but no CUDA GPU is visible; use --device cpu")
    return device


def start(device: str = "auto", seed: int = 0) -> Runtime:
    """Seed everything and, when launched by torchrun, join the process group (gloo on CPU, nccl
    on GPU). A group joined by an outer `start` (`ns run` keeps one for all its steps) is reused."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda" and world_size > 1:
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(chosen)
    joins = world_size > 1 and not dist.is_initialized()
    if joins:
        _join_group("nccl" if chosen.type == "cuda" else "gloo", rank, world_size)
    if chosen.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(cores_per_process())
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)
    return Runtime(device=chosen, rank=rank, world_size=world_size, owns_group=joins)


def _join_group(backend: str, rank: int, world_size: int) -> None:
    """`init_process_group` from torchrun's environment, in a store namespace of this restart.

    After a restart (`--max-restarts`) torchrun 2.15 hands the new workers its agent's store with
    the previous attempt's keys still in it, and gloo then connects to the dead workers'
    addresses ("connectFullMesh failed … Connection refused"); a prefix per attempt avoids it."""
    timeout = collective_timeout()
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend, timeout=timeout)
        return
    agent_store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size,
        is_master=False,
        timeout=timeout,
    )
    store = dist.PrefixStore(f"ns/attempt-{attempt}", agent_store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


def collective_timeout() -> timedelta:
    """How long a rank waits at a collective: `NS_DIST_TIMEOUT_S` (default 2 hours, as rank 0
    alone may filter and balance hundreds of millions of rows while the others wait)."""
    return timedelta(seconds=float(os.environ.get("NS_DIST_TIMEOUT_S", "7200")))


def stop(runtime: Runtime) -> None:
    """Leave the process group, if this runtime's `start` joined it."""
    if runtime.owns_group and dist.is_initialized():
        dist.destroy_process_group()
