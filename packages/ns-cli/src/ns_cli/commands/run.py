"""`ns run`: the iterative Noisy Student loop from a TOML config or a preset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from ns_cli.console import report_console
from ns_cli.options import Overrides, Quiet


def run_command(
    config_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG",
            help='Run config (TOML); `preset = "NAME"` in it starts from a preset.',
        ),
    ] = None,
    preset_name: Annotated[
        str | None, typer.Option("--preset", help="Start from this preset (see --list-presets).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run directory (default: runs/<preset or config name>)."),
    ] = None,
    overrides: Overrides = None,
    labeled: Annotated[
        Path | None,
        typer.Option("--labeled", help="Labeled images: a folder of class folders or a shard set."),
    ] = None,
    unlabeled: Annotated[
        Path | None,
        typer.Option("--unlabeled", help="Unlabeled images: any folder, list or shard set."),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval", help="Eval images: a folder of class folders or a shard set."),
    ] = None,
    shards: Annotated[
        Path | None,
        typer.Option(
            "--shards", help="Shard folders here (default RUN/shards); share it between runs."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Continue a run directory made by another config.")
    ] = False,
    list_presets: Annotated[
        bool, typer.Option("--list-presets", help="List the presets and exit.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Train a teacher, then label → filter/balance → train a noisy student, N times.

    Rerun the same command after an interruption: finished steps are skipped, training resumes
    from its last snapshot. The report is RUN/report.md; `ns status RUN` shows progress.
    Under torchrun every rank runs every step (RUN on a file system all nodes share).

    Example: ns run --preset digits-demo --out runs/digits --set iterations=3

    Example: ns run --labeled photos/train --unlabeled raw/ --eval photos/val --out runs/mine

    Example: torchrun --nproc-per-node 8 -m ns_cli run run.toml --out /shared/runs/mine
    """
    console = report_console()

    def main() -> None:
        from ns_train.config_files import overrides_as_dict
        from ns_train.errors import TrainError
        from ns_train.runs.config import load_run_config, run_config_from_dict
        from ns_train.runs.folder import RunLayout
        from ns_train.runs.loop import run
        from ns_train.runs.presets import PRESETS, preset
        from ns_train.runs.report import report_markdown
        from ns_train.runtime import is_main_process

        if list_presets:
            table = Table("preset", "recipe")
            for item in PRESETS.values():
                table.add_row(item.name, escape(item.summary))
            console.print(table)
            return
        folders = {
            "labeled": labeled,
            "unlabeled": unlabeled,
            "eval": eval_data,
            "shards": shards,
        }
        data = {key: str(path.resolve()) for key, path in folders.items() if path is not None}
        if config_file is not None and preset_name is not None:
            raise TrainError("give a config file or --preset NAME, not both")
        if config_file is not None:
            base, name = load_run_config(config_file), config_file.stem
        elif preset_name is not None or not data:
            if preset_name is None:
                raise TrainError(
                    "give a config file, --preset NAME (see --list-presets), or the image "
                    "folders: --labeled DIR --unlabeled DIR [--eval DIR]"
                )
            base, name = preset(str(preset_name)), str(preset_name)
        else:
            base, name = preset("custom-folder"), "custom-folder"
        changes = overrides_as_dict(overrides or [])
        if data:
            changes.setdefault("data", {}).update({"source": "shards", **data})
        config = run_config_from_dict(changes, base)
        run_dir = out or Path("runs") / name
        run(
            config,
            run_dir,
            force=force,
            show_progress=not quiet,
            notify=lambda line: console.print(f"[dim]{line}[/]"),
        )
        if is_main_process():  # under torchrun, rank 0 alone shows the report
            console.print(Markdown(report_markdown(RunLayout(run_dir))))

    main()


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
