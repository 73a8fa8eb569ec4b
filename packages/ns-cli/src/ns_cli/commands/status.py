"""`ns status`: where a run stands, step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ns_cli.options import AsJson

_STYLE = {"done": "green", "partial": "yellow", "pending": "dim"}


def status_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (from `ns run`).")],
    as_json: AsJson = False,
) -> None:
    """Show each step of a run: done (with its accuracy), partial (how far) or pending.

    Example: ns status runs/demo

    Example: ns status runs/demo --json | jq '.steps[] | select(.state != "done")'
    """

    def main() -> None:
        from ns_train.runs.status import run_status

        if as_json:
            steps = [
                {
                    "iteration": step.iteration,
                    "step": str(step.step),
                    "state": step.state,
                    "detail": step.detail,
                    "path": str(step.path),
                }
                for step in run_status(run_dir)
            ]
            typer.echo(json.dumps({"run": str(run_dir), "steps": steps}, indent=2))
            return
        table = Table("iteration", "step", "state", "detail", title=str(run_dir))
        for step in run_status(run_dir):
            style = _STYLE[step.state]
            table.add_row(str(step.iteration), step.step, f"[{style}]{step.state}[/]", step.detail)
        Console().print(table)

    main()


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
