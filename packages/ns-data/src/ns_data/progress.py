"""A rich progress bar for image work: count, images/s, MB/s and time left (on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rates(ProgressColumn):
    """images/s from the task's speed, MB/s from its `bytes` field over the elapsed time."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        images = task.completed / elapsed if elapsed else 0.0
        megabytes = task.fields.get("bytes", 0) / 1e6 / elapsed if elapsed else 0.0
        return Text(f"{images:,.0f} img/s {megabytes:,.1f} MB/s", style="progress.data.speed")


def image_progress(enabled: bool) -> Progress:
    """A progress display; add tasks with `total=images` and advance with `bytes=` updates."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rates(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
