"""`ns demo`: the `digits-demo` preset: teacher, two noisy students, an unnoised student."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from ns_cli.console import report_console
from ns_cli.options import Quiet, Seed


def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/demo"),
    seed: Seed = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Continue a run directory made by another config.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Noisy Student on handwritten digits: does the student beat its teacher, does noise help?

    Same as `ns run --preset digits-demo` with the seed set, plus the paper's checks.

    Example: ns demo --out runs/demo
    """
    console = report_console()

    def main() -> None:
        from ns_train.runs.demo import run_demo
        from ns_train.runs.folder import RunLayout
        from ns_train.runs.report import report_markdown

        result = run_demo(
            out,
            seed=seed,
            force=force,
            show_progress=not quiet,
            notify=lambda line: console.print(f"[dim]{line}[/]"),
        )
        console.print(Markdown(report_markdown(RunLayout(out))))
        for statement, holds in result.checks():
            console.print(f"{'[green]✓' if holds else '[red]✗'}[/] {statement}")
        console.print(f"{result.seconds / 60:.1f} minutes of steps; report: {out / 'report.md'}")

    main()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
