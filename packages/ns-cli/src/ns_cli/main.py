"""The `ns` application: one module per command under `ns_cli.commands`, mounted here."""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Annotated

import typer

from ns_cli.commands import (
    bench,
    corrupt,
    demo,
    eval_cmd,
    export,
    info,
    label,
    perturb,
    run,
    select,
    shard,
    status,
    train,
)
from ns_cli.errors import ReportingGroup

# Before torch loads GNU OpenMP (the commands import it lazily): its threads spin ~300,000 times
# before sleeping, so beside another busy process each parallel region waits for a descheduled
# thread. Measured (bench/NOTES.md): a B0 step loop on 2 cores ran 3.2x slower beside one busy
# core (a fair share: 2x), 1.6x with 1,000 spins, as fast alone. Numerics do not change; a value
# the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

app = typer.Typer(
    name="ns",
    help="Noisy Student self-training: shard images, train a teacher, pseudo-label, train a student.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=ReportingGroup,
)
for module in (
    shard,
    info,
    train,
    label,
    select,
    eval_cmd,
    export,
    corrupt,
    perturb,
    run,
    status,
    demo,
    bench,
):
    module.register(app)

PACKAGES = ("ns-cli", "ns-train", "ns-data", "ns-models")
"""Released together under one version."""


def version_line() -> str:
    """`ns X.Y.Z`, naming any package whose installed version differs from ns-cli's."""
    versions = {name: version(name) for name in PACKAGES}
    odd = [f"{name} {v}" for name, v in versions.items() if v != versions["ns-cli"]]
    return f"ns {versions['ns-cli']}" + (f" (but {', '.join(odd)}: reinstall ns)" if odd else "")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print ns's version and exit."
        ),
    ] = False,
) -> None:
    """`ns --version`; the app's help is `help=` above."""


def main() -> None:
    """Console entry point: run the app (its group maps domain errors to one line, exit 1)."""
    app()
