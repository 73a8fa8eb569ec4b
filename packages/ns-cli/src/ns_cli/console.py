"""The console commands print their tables to."""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 140
"""Columns when output goes to a file or pipe (rich would use 80, squeezing the report table)."""


def report_console() -> Console:
    """The terminal's width, or `PIPED_WIDTH` columns when stdout is not a terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)
