"""`ns demo`: one Noisy Student round on the embedded handwritten digits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ns_cli.errors import run_reporting_errors
from ns_cli.options import Seed
from ns_train.demo import DemoConfig, run_demo


def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/demo"),
    seed: Seed = 0,
) -> None:
    """Shard the digits, train a teacher, pseudo-label, train a noisy student, compare both.

    Example: ns demo --out runs/demo
    """

    def run() -> None:
        result = run_demo(out, DemoConfig(seed=seed))
        table = Table(title="Noisy Student on handwritten digits (test set)")
        for column in ("model", "top-1", "top-5", "images"):
            table.add_column(column)
        for name, res in (("teacher", result.teacher), ("student", result.student)):
            table.add_row(name, f"{100 * res.top1:.1f}%", f"{100 * res.top5:.1f}%", str(res.count))
        console = Console()
        console.print(table)
        console.print(f"seconds per phase: {result.seconds}; results in {out / 'results.json'}")

    run_reporting_errors(run)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
