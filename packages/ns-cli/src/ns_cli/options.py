"""Option types shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
