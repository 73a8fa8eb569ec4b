"""The robustness step of `ns run`: every model of the run on corrupted copies of the eval set.

The eval set is corrupted ImageNet-C style (`ns_data.robustness.corrupt`, each corruption and severity one
shard set under RUN/robustness/data), every trained model is evaluated on each (ImageNet-C
suite, results kept per unit), and the corruption errors are normalized by the run's teacher:
mCE 100 is the teacher's robustness, lower is better, as the paper compares its students.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ns_data.loading.config import LoaderConfig
from ns_train.evaluation.robustness_metrics import corruption_summary
from ns_train.evaluation.suites import evaluate_imagenet_c
from ns_train.ranks import on_main
from ns_train.runs.config import RobustnessConfig
from ns_train.runs.folder import RobustnessScores, StepValues
from ns_train.runtime import start, stop

SUMMARY_FILE = "robustness.json"


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A model of the run, as the report names it, and its checkpoint."""

    label: str
    folder: str
    checkpoint: Path


def measure_robustness(
    config: RobustnessConfig,
    eval_set: Path,
    models: list[TrainedModel],
    out: Path,
    *,
    device: str = "auto",
    show_progress: bool = True,
    notify: Callable[[str], None] = lambda line: None,
) -> StepValues:
    """Corrupt `eval_set` under `out/data`, evaluate every model there (`out/FOLDER/`, the
    ImageNet-C suite's files, AlexNet-normalized), and normalize by the first model (the
    teacher); returns the step's record: per model its mCE against the teacher (1.0 = the
    teacher), against AlexNet, and its mean top-1 error per corruption."""
    from ns_data.robustness.corrupt import corrupt_set  # imagecorruptions, SciPy: this step only

    data = out / "data"
    runtime = start(device)  # under torchrun: rank 0 corrupts, every rank evaluates its share
    try:
        on_main(
            runtime,
            lambda: corrupt_set(
                eval_set,
                data,
                corruptions=config.names,
                severities=config.severities,
                seed=config.seed,
                workers=config.workers,
                limit_per_class=config.images_per_class,
                progress=show_progress,
            ),
        )
    finally:
        stop(runtime)
    results: dict[str, RobustnessScores] = {}
    errors: dict[str, dict[str, dict[int, float]]] = {}
    for model in models:
        notify(f"robustness: {model.label}")
        result = evaluate_imagenet_c(
            model.checkpoint,
            data,
            out / model.folder,
            batch_size=config.batch_size,
            loader=LoaderConfig(
                backend=config.backend,
                workers=0 if config.backend == "torch" else config.workers,
            ),
            device=device,
            show_progress=show_progress,
        )
        errors[model.label] = result.errors
        versus_teacher = corruption_summary(result.errors, baseline=errors[models[0].label])
        results[model.label] = {
            "folder": model.folder,
            "mce_vs_teacher": versus_teacher.mce,
            "mce_vs_alexnet": result.summary.mce,
            "error": result.summary.error,
        }
    return {"models": results, "units": len(config.names) * len(config.severities)}
