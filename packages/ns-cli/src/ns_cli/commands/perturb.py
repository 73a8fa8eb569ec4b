"""`ns perturb`: ImageNet-P-style perturbation sequences of an evaluation set (ns_data.robustness.perturb)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ns_cli.options import LimitPerClass, Workers


def perturb_command(
    data: Annotated[
        Path, typer.Argument(help="A labeled shard set or a class-folder tree of images.")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder: OUT/<perturbation>/<class>/*.mp4.")],
    perturbation: Annotated[
        list[str] | None,
        typer.Option(
            "--perturbation",
            help="gaussian_noise, shot_noise, speckle_noise, brightness, translate, rotate, "
            "scale or tilt (repeatable; default: all).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise sequences.")] = 0,
    limit_per_class: LimitPerClass = None,
    workers: Workers = None,
) -> None:
    """Write one short video per image and perturbation (frame 0 the clean image), in the
    released ImageNet-P layout that `ns eval --suite imagenet-p` reads.

    A rerun skips the perturbations already written.

    Example: ns perturb shards/val val-p --perturbation translate --perturbation gaussian_noise
    """

    def run() -> None:
        from ns_data.robustness.perturb import PERTURBATIONS, perturb_set

        report = perturb_set(
            data,
            out,
            perturbations=perturbation or PERTURBATIONS,
            seed=seed,
            limit_per_class=limit_per_class,
            workers=workers,
        )
        Console(highlight=False, soft_wrap=True, markup=False, emoji=False).print(
            f"{report.written} perturbations written, {report.skipped} already done, "
            f"{report.sequences:,} sequences in {report.seconds:.1f} s: {report.out}"
        )

    run()


def register(app: typer.Typer) -> None:
    app.command("perturb")(perturb_command)
