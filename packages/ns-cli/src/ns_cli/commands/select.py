"""`ns select`: filter and balance pseudo labels into the student's selection plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ns_cli.options import AsJson, Labeled, PseudoLabels, Unlabeled, old_spelling, renamed


def select_command(
    labeled: Labeled,
    unlabeled: Unlabeled,
    out: Annotated[Path, typer.Option("--out", help="Folder for plan.npy and its summary.")],
    pseudo_labels: PseudoLabels = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Drop images whose top-1 probability is lower (default: the paper's 0.3).",
        ),
    ] = None,
    per_class: Annotated[
        int | None,
        typer.Option(
            "--per-class",
            help="Images per class (default: the labeled set's class shares of the unlabeled count).",
        ),
    ] = None,
    as_json: AsJson = False,
    labels: Annotated[Path | None, old_spelling("--labels")] = None,
) -> None:
    """Keep the most confident pseudo labels per class, duplicate small classes: write plan.npy.

    The paper kept 130K images per class on ImageNet (--per-class 130000, --threshold 0.3).

    Example: ns select --pseudo-labels runs/labels --labeled shards/train --unlabeled shards/unlabeled --out runs/plan
    """
    from ns_data.labels.selection import DEFAULT_THRESHOLD
    from ns_train.selection_plan import make_plan

    folder = renamed(pseudo_labels, labels, "--pseudo-labels", "--labels", required=True)
    cut = DEFAULT_THRESHOLD if threshold is None else threshold
    summary = make_plan(folder, labeled, unlabeled, out, threshold=cut, per_class=per_class)
    t = summary.selection.totals
    if as_json:
        typer.echo(json.dumps({"plan": str(summary.plan), "threshold": cut, **t}))
        return
    typer.echo(
        f"{summary.plan}: {t['rows']} images → {t['kept']} kept ({t['duplicates']} extra "
        f"copies, {t['copies']} per epoch), dropped {t['below']} under {cut:g} and "
        f"{t['dropped']} over their class target"
    )


def register(app: typer.Typer) -> None:
    app.command("select")(select_command)
