"""Metrics of a job: appended to `metrics.jsonl` and TensorBoard, by rank 0 only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from ns_data.atomic import atomic_path
from ns_train.jsonl import append_jsonl, read_jsonl


class MetricsLog:
    """`log(kind, step, **values)` appends one JSON line and TensorBoard scalars `kind/name`."""

    def __init__(self, directory: Path, enabled: bool = True, purge_step: int = 0) -> None:
        """`purge_step` > 0 (a resumed job) first drops records after that step."""
        self.path = Path(directory) / "metrics.jsonl"
        self.enabled = enabled
        self._board: SummaryWriter | None = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if purge_step and self.path.exists():
                kept = [r for r in read_jsonl(self.path) if r["step"] <= purge_step]
                with atomic_path(self.path) as tmp:
                    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            self._board = SummaryWriter(
                log_dir=str(Path(directory) / "tensorboard"), purge_step=purge_step or None
            )

    def log(self, kind: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        append_jsonl(self.path, record)
        assert self._board is not None
        for name, value in values.items():
            if isinstance(value, int | float):
                self._board.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self._board is not None:
            self._board.close()


class RunningMeans:
    """Per-step values summed where they were computed (a GPU, say) and read back only when
    logged: one device-to-host copy per log line instead of a wait on every step."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def add(self, **values: torch.Tensor) -> None:
        for name, value in values.items():
            value = value.detach().float()
            self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._count += 1

    def pop(self) -> dict[str, float]:
        """The means since the last `pop` (or the start); empty when nothing was added."""
        if not self._count:
            return {}
        sums = torch.stack(list(self._sums.values())).tolist()
        means = {name: total / self._count for name, total in zip(self._sums, sums, strict=True)}
        self._sums, self._count = {}, 0
        return means
