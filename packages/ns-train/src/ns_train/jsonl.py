"""JSON Lines files (`metrics.jsonl` of a job and of a run): one record per line, appended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSON Lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line."""
    with Path(path).open("a") as handle:
        handle.write(json.dumps(record) + "\n")
