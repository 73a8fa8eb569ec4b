"""Metrics of a job: appended to `metrics.jsonl` and TensorBoard, by rank 0 only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from ns_data.atomic import atomic_path


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
                kept = [r for r in read_metrics(self.path) if r["step"] <= purge_step]
                with atomic_path(self.path) as tmp:
                    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            self._board = SummaryWriter(
                log_dir=str(Path(directory) / "tensorboard"), purge_step=purge_step or None
            )

    def log(self, kind: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        assert self._board is not None
        for name, value in values.items():
            if isinstance(value, int | float):
                self._board.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self._board is not None:
            self._board.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record of a `metrics.jsonl`."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
