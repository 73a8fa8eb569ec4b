"""Everything a training job needs to continue exactly after a crash, saved without pickle.

`out/state/step-00001000/` holds `model.safetensors` and `ema.safetensors` (weights and buffers),
`optimizer.safetensors` (the optimizer's tensors) and `trainer.json` (step, schedule, loader
positions of every rank, the optimizer's other values, the number of ranks). The RNG states of every rank go in
`rng.safetensors` (rank 0's under their plain names, rank r's as `rank{r}.NAME`). Each folder is
written under a temporary name and renamed, and only the newest `keep` are kept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ns_data.atomic import atomic_path
from ns_train.errors import TrainError

STATE_DIR = "state"
_PREFIX = "step-"


@dataclass(slots=True)
class Snapshot:
    """The training state at the end of `step`."""

    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    loaders: list[dict[str, dict[str, Any]]]
    """Every rank's loader positions, in rank order (the ranks' shares of a plan differ)."""
    rng: dict[str, torch.Tensor]
    """Every rank's RNG states (see `rank_rng_states`)."""
    world_size: int = 1


def capture_rng() -> dict[str, torch.Tensor]:
    """The torch RNG states (CPU, and CUDA when present) that dropout and stochastic depth draw from."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def rank_rng_states(per_rank: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One flat dict of the RNG states of ranks 0..N-1, as `rng.safetensors` holds them."""
    flat = dict(per_rank[0])
    for rank, states in enumerate(per_rank[1:], start=1):
        flat.update({f"rank{rank}.{name}": state for name, state in states.items()})
    return flat


def rng_of_rank(flat: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor] | None:
    """Rank `rank`'s states out of `rank_rng_states`'s dict; None when it holds none for it."""
    if rank == 0:
        return {k: v for k, v in flat.items() if not k.startswith("rank")}
    prefix = f"rank{rank}."
    mine = {k.removeprefix(prefix): v for k, v in flat.items() if k.startswith(prefix)}
    return mine or None


def restore_rng(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    values: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, entries in state["state"].items():
        plain = {}
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[name] = value
        values["state"][str(index)] = plain
    return tensors, values


def _join_optimizer(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(plain) for i, plain in values["state"].items()}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    return {"state": state, "param_groups": values["param_groups"]}


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_snapshot(out_dir: Path, snapshot: Snapshot, keep: int) -> Path:
    """Write the snapshot atomically under `out_dir/state/` and delete all but the newest `keep`."""
    root = Path(out_dir) / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{snapshot.step:08d}"
    # A full disk leaves the older snapshots whole; killed writers' temporaries of any step go
    # first (one job per folder: it is locked).
    with atomic_path(final, folder=True, sweep=f".{_PREFIX}*.tmp-*") as tmp:
        _write_snapshot(tmp, snapshot)
    for old in sorted(root.glob(f"{_PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_snapshot(tmp: Path, snapshot: Snapshot) -> None:
    save_file(_cpu(snapshot.model), str(tmp / "model.safetensors"))
    if snapshot.ema is not None:
        save_file(_cpu(snapshot.ema), str(tmp / "ema.safetensors"))
    optimizer_tensors, optimizer_values = _split_optimizer(snapshot.optimizer)
    save_file(optimizer_tensors, str(tmp / "optimizer.safetensors"))
    save_file(_cpu(snapshot.rng), str(tmp / "rng.safetensors"))
    trainer = {
        "step": snapshot.step,
        "schedule": snapshot.schedule,
        "loaders": snapshot.loaders,
        "optimizer": optimizer_values,
        "world_size": snapshot.world_size,
    }
    (tmp / "trainer.json").write_text(json.dumps(trainer))


def latest_snapshot(out_dir: Path) -> Path | None:
    """The newest finished snapshot folder of a job, if any."""
    found = sorted((Path(out_dir) / STATE_DIR).glob(f"{_PREFIX}*"))
    return found[-1] if found else None


def _per_rank(loaders: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
    """Snapshots before 0.2 held one rank's positions as a dict."""
    return [loaders] if isinstance(loaders, dict) else loaders


def load_snapshot(path: Path) -> Snapshot:
    """Read a snapshot folder (never unpickles); TrainError naming the file when one is bad."""
    try:
        trainer = json.loads((path / "trainer.json").read_text())
        ema_file = path / "ema.safetensors"
        return Snapshot(
            step=int(trainer["step"]),
            model=load_file(str(path / "model.safetensors")),
            ema=load_file(str(ema_file)) if ema_file.exists() else None,
            optimizer=_join_optimizer(
                load_file(str(path / "optimizer.safetensors")), trainer["optimizer"]
            ),
            schedule=trainer["schedule"],
            loaders=_per_rank(trainer["loaders"]),
            rng=load_file(str(path / "rng.safetensors")),
            world_size=int(trainer.get("world_size", 1)),
        )
    except (OSError, KeyError, ValueError) as err:
        raise TrainError(
            f"cannot resume from {path}: {err}; delete that folder to use an older one"
        ) from err
