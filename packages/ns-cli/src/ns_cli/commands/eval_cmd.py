"""`ns eval`: a checkpoint's evaluation report, or a robustness suite (ImageNet-C, ImageNet-A)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ns_cli.options import (
    AsJson,
    Backend,
    BatchSize,
    Checkpoint,
    Device,
    LimitPerClass,
    LoaderWorkers,
    Quiet,
)


def eval_command(
    checkpoint: Checkpoint,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Labeled shard set or folder of class folders; for --suite, the suite's folder.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write eval.json, eval.md and plots (or the suite's) here."),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option("--suite", help="imagenet-c or imagenet-a (see docs/robustness.md)."),
    ] = None,
    clean: Annotated[
        Path | None,
        typer.Option("--clean", help="imagenet-c: the clean eval set, for the relative mCE."),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="imagenet-c/-p: normalize by another model's imagenet-c.json / imagenet-p.json.",
        ),
    ] = None,
    limit_per_class: LimitPerClass = None,
    batch_size: BatchSize = 128,
    workers: LoaderWorkers = None,
    as_json: AsJson = False,
    backend: Backend = "auto",
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Evaluate a checkpoint (EMA weights, no noise, center crop at its resolution).

    Reports top-1, top-5, per-class accuracy, NLL and calibration error; classes are matched by
    name, so the data may hold any subset of the checkpoint's classes.

    Example: ns eval --checkpoint runs/student/checkpoint --data photos/val --out runs/student/eval

    Example: ns eval --checkpoint CKPT --suite imagenet-c --data imagenet-c/ --clean val/ --out OUT

    Example: ns eval --checkpoint CKPT --suite imagenet-a --data imagenet-a/

    Example: ns eval --checkpoint CKPT --suite imagenet-p --data val-p/ --out OUT
    """
    from ns_data.loading.config import LoaderConfig

    loader = LoaderConfig(backend=backend, workers=workers)  # type: ignore[arg-type]  # checked there

    def run() -> None:
        from ns_train.errors import TrainError

        if suite is None:
            from ns_train.evaluation.report import evaluate_checkpoint, write_eval_report

            report = evaluate_checkpoint(
                checkpoint,
                data,
                limit_per_class=limit_per_class,
                batch_size=batch_size,
                loader=loader,
                device=device,
            )
            written = write_eval_report(report, out) if out is not None else []
            _print(report.to_dict(), report.summary_line(), written, as_json)
        elif suite == "imagenet-a":
            from ns_train.evaluation.suites import evaluate_imagenet_a

            report = evaluate_imagenet_a(
                checkpoint,
                data,
                out,
                limit_per_class=limit_per_class,
                batch_size=batch_size,
                loader=loader,
                device=device,
            )
            _print(
                report.to_dict(),
                f"ImageNet-A: {report.summary_line()}",
                [out] if out else [],
                as_json,
            )
        elif suite == "imagenet-c":
            from ns_train.evaluation.suites import IMAGENET_C_MD, evaluate_imagenet_c

            if out is None:
                raise TrainError("--suite imagenet-c needs --out DIR (results are kept per unit)")
            console = Console(stderr=True, highlight=False)
            result = evaluate_imagenet_c(
                checkpoint,
                data,
                out,
                clean=clean,
                baseline=baseline,
                limit_per_class=limit_per_class,
                show_progress=not quiet,
                notify=lambda line: console.print(f"[dim]{line}[/]"),
                batch_size=batch_size,
                loader=loader,
                device=device,
            )
            text = (out / IMAGENET_C_MD).read_text()
            _print(result.summary.to_dict(), text.rstrip(), [out], as_json)
        elif suite == "imagenet-p":
            from ns_train.evaluation.suites import IMAGENET_P_MD, evaluate_imagenet_p

            if out is None:
                raise TrainError("--suite imagenet-p needs --out DIR (results are kept per unit)")
            console = Console(stderr=True, highlight=False)
            perturbation = evaluate_imagenet_p(
                checkpoint,
                data,
                out,
                baseline=baseline,
                limit_per_class=limit_per_class,
                batch_size=batch_size,
                device=device,
                show_progress=not quiet,
                notify=lambda line: console.print(f"[dim]{line}[/]"),
            )
            text = (out / IMAGENET_P_MD).read_text()
            values = {
                "flip_probability": perturbation.flip_probability,
                "top5_distance": perturbation.top5_distance,
                "mfr": perturbation.mfr,
                "mean_top5_distance": perturbation.mean_top5_distance,
            }
            _print(values, text.rstrip(), [out], as_json)
        else:
            raise TrainError(f"unknown suite {suite!r}: use imagenet-c, imagenet-a or imagenet-p")

    run()


def _print(values: Mapping[str, object], text: str, written: list[Path], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(values))
        return
    typer.echo(text)
    for path in written:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
