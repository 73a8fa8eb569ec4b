"""Option types shared by several commands, defined once: one name for one thing everywhere.

The convention (docs/cli.md): the unlabeled shard set is `--unlabeled`, the labeled one
`--labeled`, a pseudo-label folder `--pseudo-labels`, the checkpoint a command runs
`--checkpoint`, a config file the first argument `CONFIG`, field changes `--set KEY=VALUE`;
`--overwrite` deletes what OUT holds and starts over, `--force` continues OUT under another config
keeping finished work; `--quiet` hides progress bars, `--json` prints one JSON object. Renamed
options keep their old spelling for one version as a hidden option (`old_spelling`, `renamed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, overload

import typer

T = TypeVar("T")

ExistingPath = Annotated[Path, typer.Argument(help="An existing path.", show_default=False)]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (shuffling, augmentation, init).")]
Backend = Annotated[
    str, typer.Option("--backend", help="Loader backend: auto, dali-gpu, dali-cpu or torch.")
]
Device = Annotated[
    str, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if present).")
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (for scripts) instead of lines.")
]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
_CHECKPOINT = typer.Option(
    "--checkpoint", help="Checkpoint folder (`ns train`).", show_default=False
)
Checkpoint = Annotated[Path, _CHECKPOINT]
Labeled = Annotated[Path, typer.Option("--labeled", help="Labeled shard set (`ns shard`).")]
_UNLABELED = typer.Option(
    "--unlabeled", help="Unlabeled shard set (`ns shard`).", show_default=False
)
Unlabeled = Annotated[Path, _UNLABELED]
OptionalUnlabeled = Annotated[Path | None, _UNLABELED]
PseudoLabels = Annotated[
    Path | None,
    typer.Option("--pseudo-labels", help="Pseudo-label folder (`ns label`).", show_default=False),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Change one field, e.g. --set epochs=30 (repeatable)."),
]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per batch.")]
LoaderWorkers = Annotated[
    int | None,
    typer.Option("--workers", help="Loader workers (default: this process's cores, at most 8)."),
]
Workers = Annotated[
    int | None, typer.Option("--workers", help="Worker processes (default: usable cores).")
]
LimitPerClass = Annotated[
    int | None,
    typer.Option("--limit-per-class", help="Only the first N images of each class."),
]


def old_spelling(name: str) -> Any:
    """A hidden option for `name`, the old spelling of a renamed option (kept one version)."""
    return typer.Option(name, hidden=True, show_default=False)


@overload
def renamed(
    value: T | None, old: T | None, name: str, old_name: str, *, required: Literal[True]
) -> T: ...
@overload
def renamed(
    value: T | None, old: T | None, name: str, old_name: str, *, required: Literal[False]
) -> T | None: ...
def renamed(
    value: T | None, old: T | None, name: str, old_name: str, *, required: bool
) -> T | None:
    """The value given as `name` or as its old spelling `old_name` (not both); a usage error
    (exit 2, as for any missing option) when `required` and neither was given."""
    if value is not None and old is not None:
        raise typer.BadParameter(
            f"given twice, also as its old spelling {old_name}", param_hint=f"'{name}'"
        )
    chosen = value if value is not None else old
    if chosen is None and required:
        raise typer.BadParameter("missing: this option is required", param_hint=f"'{name}'")
    return chosen
