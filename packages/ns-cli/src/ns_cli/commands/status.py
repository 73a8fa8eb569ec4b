"""`ns status`: where a run stands, step by step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ns_cli.errors import run_reporting_errors

_STYLE = {"done": "green", "partial": "yellow", "pending": "dim"}


def status_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (from `ns run`).")],
) -> None:
    """Show each step of a run: done (with its accuracy), partial (how far) or pending.

    Example: ns status runs/demo
    """

    def main() -> None:
        from ns_train.status import run_status

        table = Table("iteration", "step", "state", "detail", title=str(run_dir))
        for step in run_status(run_dir):
            style = _STYLE[step.state]
            table.add_row(str(step.iteration), step.step, f"[{style}]{step.state}[/]", step.detail)
        Console().print(table)

    run_reporting_errors(main)


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
