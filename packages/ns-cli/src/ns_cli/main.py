"""The `ns` application: one module per command under `ns_cli.commands`, mounted here."""

from __future__ import annotations

import typer

from ns_cli.commands import (
    corrupt,
    demo,
    eval_cmd,
    info,
    label,
    perturb,
    run,
    select,
    shard,
    status,
    train,
)
from ns_cli.errors import run_reporting_errors

app = typer.Typer(
    name="ns",
    help="Noisy Student self-training: shard images, train a teacher, pseudo-label, train a student.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (shard, info, train, label, select, eval_cmd, corrupt, perturb, run, status, demo):
    module.register(app)


def main() -> None:
    """Console entry point: run the app, mapping domain errors to one line and exit code 1."""
    run_reporting_errors(lambda: app(standalone_mode=True))
